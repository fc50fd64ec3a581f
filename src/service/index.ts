export { DB_FILE, LOCK_FILE, runUntilSignal, type Service, startService } from "./serve.ts";
