import { RafsnapError, ErrorKind } from "../errdefs/index.ts";

/** nydusd's daemon states as its API reports them (docs/compat.md §5 "state machine"). */
export type DaemonState = "INIT" | "READY" | "RUNNING" | "STOPPED";

/** Events that move the state machine. */
export type DaemonEvent = "Mount" | "Takeover" | "Start" | "Stop" | "Exit";

const NEXT: Record<DaemonState, Partial<Record<DaemonEvent, DaemonState>>> = {
  INIT: { Mount: "READY", Takeover: "READY", Stop: "STOPPED" },
  READY: { Start: "RUNNING", Stop: "STOPPED", Exit: "STOPPED" },
  RUNNING: { Stop: "READY" },
  STOPPED: {},
};

/**
 * The daemon state machine of nydusd: Init -Mount/Takeover-> Ready -Start-> Running,
 * Running -Stop-> Ready, Ready -Stop/Exit-> stopped, Init -Stop-> stopped. A transition that
 * is not allowed throws FailedPrecondition (nydusd answers it with HTTP 400 UnexpectedEvent).
 */
export class DaemonStateMachine {
  private current: DaemonState = "INIT";

  get state(): DaemonState {
    return this.current;
  }

  /** Applies `event`; returns the new state. */
  fire(event: DaemonEvent): DaemonState {
    const next = NEXT[this.current][event];
    if (!next) {
      throw new RafsnapError(ErrorKind.FailedPrecondition, `UnexpectedEvent: ${event} in state ${this.current}`);
    }
    this.current = next;
    return next;
  }
}
