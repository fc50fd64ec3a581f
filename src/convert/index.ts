export { normalizeTarPath, readTar, type TarEntry, type TarEntryType, type TarHeader } from "./tar.ts";
export { decompressLayer, detectCompression, type LayerCheck, type LayerCompression } from "./layer.ts";
export {
  type BootstrapLayer,
  bootstrapLayer,
  mergedIndex,
  NydusAnnotation,
  type NydusBlobLayer,
  nydusImage,
} from "./nydus-image.ts";
export {
  type Descriptor,
  hostPlatform,
  type ImageConfig,
  type Index,
  type Manifest,
  MediaType,
  parsePlatform,
  type Platform,
  type ResolvedImage,
  resolveImage,
} from "./oci.ts";
export { type CheckReport, checkImage, inspectImage, openBootstrap } from "./inspect.ts";
export { type ConvertOptions, type ConvertResult, convertImage } from "./convert.ts";
export { readPrefetchListFile } from "../rafs/index.ts";
