// An HTTP proxy on 127.0.0.1 in front of a registry that misbehaves on request: answers 500
// a number of times, answers late, trickles or cuts a blob body — for the client's retry,
// resume and deadline paths.

/** A running proxy; arm faults with its methods. */
export interface FlakyProxy {
  host: string;
  /** The next `n` requests get HTTP 500. */
  fail500(n: number): void;
  /** The next `n` blob GETs send only the first half of their body, then drop the connection. */
  cutBlobs(n: number): void;
  /** The next `n` blob GETs wait `ms` before answering. */
  slowBlobs(n: number, ms: number): void;
  /** The next `n` blob GETs answer at once, then send their body one byte every `everyMs`. */
  trickleBlobs(n: number, everyMs: number): void;
  /** Requests seen so far (method and path). */
  seen(): string[];
  /** Body bytes sent for blob GETs since the last reset. */
  blobBytes(): number;
  resetCounters(): void;
  stop(): void;
}

/** Starts the proxy forwarding to `upstream` (`http://127.0.0.1:PORT`). */
export function startFlakyProxy(upstream: string): FlakyProxy {
  let fail = 0;
  let cut = 0;
  let slow = 0;
  let slowMs = 0;
  let trickle = 0;
  let trickleMs = 0;
  let blobBytes = 0;
  const log: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      log.push(`${req.method} ${url.pathname}`);
      if (fail > 0) {
        fail--;
        return new Response("injected failure", { status: 500 });
      }
      const headers = new Headers(req.headers);
      headers.delete("host");
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, { method: req.method, headers, body, redirect: "manual" });
      const outHeaders = new Headers(res.headers);
      const loc = outHeaders.get("location");
      if (loc?.startsWith(upstream)) outHeaders.set("location", loc.replace(upstream, `http://127.0.0.1:${server.port}`));
      if (req.method === "GET" && url.pathname.includes("/blobs/") && slow > 0) {
        slow--;
        await Bun.sleep(slowMs);
      }
      if (req.method === "GET" && url.pathname.includes("/blobs/") && trickle > 0 && res.ok) {
        trickle--;
        const bytes = new Uint8Array(await res.arrayBuffer());
        let at = 0;
        let timer: ReturnType<typeof setInterval> | undefined;
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(bytes.slice(0, ++at)); // headers and a first byte at once
            timer = setInterval(() => {
              try {
                if (at >= bytes.length) {
                  clearInterval(timer);
                  c.close();
                  return;
                }
                c.enqueue(bytes.slice(at, ++at));
              } catch {
                clearInterval(timer);
              }
            }, trickleMs);
          },
          cancel() {
            clearInterval(timer);
          },
        });
        return new Response(stream, { status: res.status, headers: outHeaders });
      }
      if (req.method === "GET" && url.pathname.includes("/blobs/") && cut > 0 && res.ok) {
        cut--;
        const bytes = new Uint8Array(await res.arrayBuffer());
        const half = bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 2)));
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(half);
            setTimeout(() => c.error(new Error("connection cut by test proxy")), 10);
          },
        });
        return new Response(stream, { status: res.status, headers: outHeaders });
      }
      if (req.method === "GET" && url.pathname.includes("/blobs/") && res.ok && res.body) {
        // Counted as it streams through: buffering whole blobs would delay the first byte by
        // seconds for big layers and skew benchmarks against whole-image pulls.
        const counted = res.body.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, c) {
              blobBytes += chunk.length;
              c.enqueue(chunk);
            },
          }),
        );
        return new Response(counted, { status: res.status, headers: outHeaders });
      }
      return new Response(res.body, { status: res.status, headers: outHeaders });
    },
  });
  return {
    host: `127.0.0.1:${server.port}`,
    slowBlobs: (n, ms) => {
      slow = n;
      slowMs = ms;
    },
    trickleBlobs: (n, ms) => {
      trickle = n;
      trickleMs = ms;
    },
    fail500: (n) => {
      fail = n;
    },
    cutBlobs: (n) => {
      cut = n;
    },
    seen: () => [...log],
    blobBytes: () => blobBytes,
    resetCounters: () => {
      blobBytes = 0;
      log.length = 0;
    },
    stop: () => server.stop(true),
  };
}
