export { normalizeTarPath, readTar, type TarEntry, type TarEntryType, type TarHeader } from "./tar.ts";
