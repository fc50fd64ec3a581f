import { unlinkSync } from "node:fs";
import { type DescMessage, type DescMethod, type DescService, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ErrorKind, invalidArgument, kindOf, RafsnapError } from "../errdefs/index.ts";
import { LogLevels, type Logger } from "../log/index.ts";
import { bindPrivately, prepareSocketPath } from "../mount/index.ts";
import { toServiceError } from "./errors.ts";

/** Per-call context handed to implementations. */
export interface CallContext {
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
}

type MethodImpl<M> = M extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? (req: MessageShape<I>, ctx: CallContext) => Promise<MessageShape<O>>
  : M extends { methodKind: "server_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (req: MessageShape<I>, ctx: CallContext) => AsyncIterable<MessageShape<O>>
    : never;

/** An implementation of every method of a generated service descriptor. */
export type ServiceImpl<S extends DescService & { method: Record<string, unknown> }> = {
  [K in keyof S["method"]]: MethodImpl<S["method"][K]>;
};

/** One service to register: its descriptor and implementation. */
export interface Registration {
  service: DescService;
  // biome-ignore lint: implementations are checked by ServiceImpl where they are built.
  impl: Record<string, (req: any, ctx: CallContext) => any>;
}

/**
 * A service registered as grpc-js definitions and handlers as they are (a proxy forwarding
 * raw bytes); its handlers do their own logging, which must leave secrets out.
 */
export interface RawRegistration {
  definition: grpc.ServiceDefinition;
  handlers: grpc.UntypedServiceImplementation;
}

function definitionOf(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.name] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: (v) => Buffer.from(toBinary(m.input, v as MessageShape<DescMessage>)),
      requestDeserialize: (b) => fromBinary(m.input, b),
      responseSerialize: (v) => Buffer.from(toBinary(m.output, v as MessageShape<DescMessage>)),
      responseDeserialize: (b) => fromBinary(m.output, b),
    };
  }
  return def;
}

/** The call's context; its AbortSignal is made only when an implementation asks for it. */
function contextOf(call: { on(event: "cancelled", listener: () => void): unknown }): CallContext {
  let ac: AbortController | undefined;
  return {
    get signal() {
      if (!ac) {
        const c = new AbortController();
        call.on("cancelled", () => c.abort());
        ac = c;
      }
      return ac.signal;
    },
  };
}

/** Longest string a log line shows of a request field (keys may be up to 4096 bytes, or forged longer). */
const LOGGED_STRING = 256;

/** `s` cut to `max` characters (default {@link LOGGED_STRING}), saying how long it was. */
export function loggable(s: string, max = LOGGED_STRING): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${Buffer.byteLength(s)} bytes)`;
}

/**
 * A request as the debug log shows it: every `labels` map (at any depth) keeps its keys but
 * not its values — labels carry pull secrets (`containerd.io/snapshot/pullsecret`) and image
 * credentials, which must never reach a log — and long strings are cut ({@link loggable}).
 * The request itself is not changed.
 */
export function loggableRequest(req: unknown, depth = 0): unknown {
  if (typeof req === "string") return loggable(req);
  if (typeof req !== "object" || req === null || depth > 4) return req;
  if (ArrayBuffer.isView(req)) return req;
  if (Array.isArray(req)) return req.map((v) => loggableRequest(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req)) {
    if (k === "labels" && typeof v === "object" && v !== null) out[k] = Object.fromEntries(Object.keys(v).map((l) => [loggable(l), "<redacted>"]));
    else out[k] = loggableRequest(v, depth + 1);
  }
  return out;
}

/** The call and the key it is about, as failures name them: `Prepare key="k8s.io/1/x"`. */
function callName(m: DescMethod, req: unknown): string {
  const key = (req as { key?: string; name?: string }).key || (req as { name?: string }).name || "";
  return `${m.name}${key ? ` key=${JSON.stringify(loggable(key))}` : ""}`;
}

/**
 * Why a call must not start: cancelled by its client, or its deadline passed while it waited
 * to be served (a burst of Prepares with 1 ms deadlines). Such a call does no work at all; a
 * call that started runs to its end, so no snapshot is ever half made.
 */
function tooLate(call: { cancelled: boolean; getDeadline(): grpc.Deadline }): RafsnapError | undefined {
  if (call.cancelled) return new RafsnapError(ErrorKind.Canceled, "the call was cancelled before it started; nothing was done");
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  if (Number.isFinite(ms) && ms <= Date.now())
    return new RafsnapError(ErrorKind.DeadlineExceeded, "the call's deadline passed before it started; nothing was done");
  return undefined;
}

/** Logs a failed call: expected outcomes (NotFound…) at debug, the rest at warn/error. */
function logFailure(log: Logger, m: DescMethod, req: unknown, err: unknown): void {
  const kind = kindOf(err);
  const line = `${callName(m, req)} failed (${kind}):`;
  // Messages quote keys, which may be huge: the log gets at most 2 KiB of each.
  const e = err as { message?: unknown; cause?: { message?: unknown } } | undefined;
  const text = loggable(`${String(e?.message ?? err)}${e?.cause?.message ? `: ${String(e.cause.message)}` : ""}`, 2048);
  if (kind === ErrorKind.NotFound || kind === ErrorKind.AlreadyExists) log.debug(line, text);
  else if (kind === ErrorKind.Unknown || kind === ErrorKind.Internal) log.error(line, text);
  else log.warn(line, text);
}

/**
 * Writes `msg` to a server stream and resolves once the transport has taken it (or the call
 * was cancelled): a stream holds one message at a time, however slowly its client reads —
 * writing without waiting buffered every page of 200 concurrent Lists in memory (16 GB).
 */
function sent(call: grpc.ServerWritableStream<unknown, unknown>, msg: unknown): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cancelled = () => resolve();
    call.once("cancelled", cancelled);
    call.write(msg, (err?: Error | null) => {
      call.off("cancelled", cancelled);
      if (err) reject(err);
      else resolve();
    });
  });
}

function handlersOf(r: Registration, log: Logger): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  // Checked once: building a log record per call costs time even when it is dropped.
  const debug = log.level >= LogLevels.debug;
  for (const m of r.service.methods) {
    const fn = r.impl[m.localName];
    if (!fn) throw new Error(`service ${r.service.typeName} has no implementation of ${m.name}`);
    if (m.methodKind === "unary") {
      out[m.name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (debug) log.debug(m.name, loggableRequest(call.request));
        const fail = (err: unknown) => {
          logFailure(log, m, call.request, err);
          cb(toServiceError(err, callName(m, call.request)));
        };
        const late = tooLate(call);
        if (late) return fail(late);
        try {
          (fn(call.request, contextOf(call)) as Promise<unknown>).then((res) => cb(null, res), fail);
        } catch (err) {
          fail(err); // an implementation that threw before returning its promise
        }
      }) as grpc.handleUnaryCall<unknown, unknown>;
    } else if (m.methodKind === "server_streaming") {
      out[m.name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        if (debug) log.debug(m.name, loggableRequest(call.request));
        (async () => {
          const late = tooLate(call);
          if (late) throw late;
          for await (const msg of fn(call.request, contextOf(call)) as AsyncIterable<unknown>) {
            if (call.cancelled) return;
            await sent(call, msg);
          }
          if (!call.cancelled) call.end();
        })().catch((err) => {
          logFailure(log, m, call.request, err);
          call.emit("error", toServiceError(err, callName(m, call.request)));
        });
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    } else {
      throw new Error(`${m.methodKind} methods are not supported (${r.service.typeName}/${m.name})`);
    }
  }
  return out;
}

/** Where and how to listen. */
export interface ListenOptions {
  /** Absolute path of the unix socket. */
  path: string;
  uid: number;
  gid: number;
  /** Socket file mode; 0660 by default. */
  mode?: number;
}

/** A running gRPC server. */
export interface RunningServer {
  /**
   * Stops accepting connections, lets in-flight calls finish for up to `graceMs`, then
   * cancels what is left. Removes the socket file.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Prepares the socket path — creates its directory (0711), removes a stale socket (one
 * nobody accepts on), refuses a live socket or any other kind of file there
 * (FailedPrecondition naming the path) — then serves the
 * registrations on it with mode 0660 (or `mode`) and the configured owner.
 */
export async function listenUnix(opts: ListenOptions, regs: Registration[], log: Logger, raw: RawRegistration[] = []): Promise<RunningServer> {
  if (!opts.path.startsWith("/")) throw invalidArgument(`socket address ${JSON.stringify(opts.path)} is not an absolute path`);
  if (await prepareSocketPath(opts.path, "socket address")) log.info(`removed stale socket ${opts.path}`);
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 16 << 20,
    "grpc.max_send_message_length": 16 << 20,
    // channelz bookkeeping costs CPU on every call and nothing reads it here.
    "grpc.enable_channelz": 0,
  });
  for (const r of regs) server.addService(definitionOf(r.service), handlersOf(r, log));
  for (const r of raw) server.addService(r.definition, r.handlers);
  // The socket has its mode and owner before anyone can reach it (bound in a private dir, renamed).
  await bindPrivately(
    opts.path,
    opts.mode ?? 0o660,
    (at) =>
      new Promise<void>((resolve, reject) => {
        server.bindAsync(`unix:${at}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
      }),
    { uid: opts.uid, gid: opts.gid },
  );
  log.info(`serving on ${opts.path}`);
  return {
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          try {
            unlinkSync(opts.path);
          } catch {
            // already gone
          }
          resolve();
        });
      }),
  };
}
