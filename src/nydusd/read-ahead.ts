// When blobfs reads ahead, and how far: the policy for sequential readers, kept apart from
// the fetching it triggers.

/**
 * Read-ahead: at most 32 MiB ahead, in requests of up to 4 MiB, 4 at a time — enough in
 * flight that fetching, decoding and answering overlap, in requests large enough that the
 * registry's cost per request does not dominate (measured with docker-registry on 2 cores:
 * 256 range requests of 1 MiB cost it 1.3 CPU-seconds, one of 256 MiB 0.1; cold sequential
 * reads went from ~300 to ~550 MiB/s with 4 MiB requests — docs/nydusd.md).
 */
export const READ_AHEAD = 32 << 20;
/** Size of one read-ahead request. */
export const READ_AHEAD_REQUEST = 4 << 20;
/** Read-ahead requests in flight at once. */
export const READ_AHEAD_FETCHES = 4;

/** How far from the previous read's end a read may start and still count as sequential. */
const SEQUENTIAL_SLACK = 256 << 10;

/** A blob's reading history, as far as read-ahead needs it. */
export interface SequentialRun {
  /** End of the last read. */
  lastEnd?: number;
  /** How many reads in a row started near the previous one. */
  streak?: number;
  /** Where the current sequential run started. */
  runStart?: number;
}

/**
 * Notes a read of `[offset, offset+length)` in `run` and returns how many bytes past its end
 * to fetch ahead: 0 unless this is the third read in a row starting near where the previous
 * one ended — by this thread or the fast path, whose last read ended at `fastEnd` (-1: none);
 * requests of one window arrive in parallel and out of order, so "near" grows with the request
 * size. The window is twice the run so far, at least 1 MiB, at most `most` (0: never). Lone
 * reads (small files) get nothing: they fetch only what they cover.
 */
export function readAheadBytes(run: SequentialRun, offset: number, length: number, fastEnd: number, most: number): number {
  const slack = Math.max(SEQUENTIAL_SLACK, 4 * length);
  const near =
    (run.lastEnd !== undefined && Math.abs(offset - run.lastEnd) <= slack) || (fastEnd >= 0 && fastEnd >= offset - slack && fastEnd <= offset + length + slack);
  run.streak = near ? (run.streak ?? 0) + 1 : 0;
  if (!near || run.runStart === undefined) run.runStart = offset;
  run.lastEnd = offset + length;
  if (run.streak < 2 || most <= 0) return 0;
  return Math.min(most, Math.max(1 << 20, 2 * (offset + length - run.runStart)));
}
