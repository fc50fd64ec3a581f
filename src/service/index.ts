export { DB_FILE, runUntilSignal, type Service, startService } from "./serve.ts";
