export { DB_FILE, LOCK_FILE, refuseLiveAddress, runUntilSignal, type Service, startService } from "./serve.ts";
export { formatStatus, readStatus, type Status } from "./status.ts";
