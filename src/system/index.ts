export { type ControllerDeps, type DaemonInfo, type InstanceInfo, nydusdBinary, SystemController, type UpgradeRequest } from "./controller.ts";
export { type ErrorBody, route, type SystemServer, serveSystem, statusOf } from "./server.ts";
