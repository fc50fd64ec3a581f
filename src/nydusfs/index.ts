export { bootstrapBlobIds, bootstrapPath } from "./bootstrap.ts";
export type { GcStats } from "./cache-gc.ts";
export { instanceConfig, loadTemplate, pickMirror } from "./daemon-config.ts";
export { type CredentialLookup, imageRefOf, NydusFs, type NydusFsConfig, type NydusFsOptions } from "./filesystem.ts";
