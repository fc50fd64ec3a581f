export type { Info, Kind, Micros, Usage } from "../store/index.ts";
export { validateKey } from "./keys.ts";
export { Label, validateLabels } from "./labels.ts";
export { type Mount, nativeMounts, snapshotPaths } from "./mounts.ts";
export { Snapshotter, type SnapshotterOptions } from "./snapshotter.ts";
export { type RemoteMountStyle, remoteMounts } from "./mounts.ts";
export type { RemoteFs } from "./remote.ts";
