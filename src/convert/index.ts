export { normalizeTarPath, readTar, type TarEntry, type TarEntryType, type TarHeader } from "./tar.ts";
export { decompressLayer, detectCompression, type LayerCheck, type LayerCompression } from "./layer.ts";
