export { type ApiServer, type DaemonApi, type DaemonInfo, type MountRequest, route, startApiServer, statusOf } from "./api.ts";
export { type DaemonEvent, type DaemonState, DaemonStateMachine } from "./state.ts";
