export { DB_FILE, LOCK_FILE, refuseLiveAddress, runUntilSignal, type Service, startService } from "./serve.ts";
export { formatStatus, type ImageDaemon, imageDaemon, readStatus, type Status } from "./status.ts";
