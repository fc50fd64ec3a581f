export * from "./logger.ts";
export { backupStamp, type Rotation, RotatingFile } from "./rotate.ts";
