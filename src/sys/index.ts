export { fdPath, type LayerFile, LayerFileError, openBeneath, openRegular, type RefusedBecause, readBeneath, readLayerFile } from "./beneath.ts";
export { cstr, LIBC, type Libc, openLibc, withLibc } from "./libc.ts";
export { isCompiledBinary, selfCommand, workerUrl } from "./binary.ts";
export { diskUsage, type DiskUsageOptions, type DiskUsageResult } from "./usage.ts";
export { pidAlive } from "./process.ts";
