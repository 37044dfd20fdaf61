// Errors the control channel and the connection manager raise; problem.ts maps them to HTTP.

/** ferryd did not answer a request in time (HTTP 504). */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor(readonly reqId: number, readonly timeoutMs: number, what = 'request') {
    super(`ferryd did not answer ${what} ${reqId} within ${timeoutMs} ms`);
  }
}

/** The request ring is full; the caller may retry shortly (HTTP 503 + Retry-After). */
export class RingFullError extends Error {
  override readonly name = 'RingFullError';
  constructor(readonly ring = 'request') {
    super(`the ${ring} ring to ferryd is full`);
  }
}

/** ferryd is not running, not attached, or went away while a request was pending (HTTP 503). */
export class FerrydDownError extends Error {
  override readonly name = 'FerrydDownError';
  constructor(readonly reason = 'ferryd is not running') {
    super(reason);
  }
}

/** The segment exists but must not be used (ABI/layout mismatch, unsafe permissions, ...). */
export class AttachError extends Error {
  override readonly name = 'AttachError';
  constructor(message: string, readonly code: 'ENOENT' | 'EPERM' | 'ABI' | 'LAYOUT' | 'MAGIC' | 'SIZE' | 'MMAP' | 'OTHER') {
    super(message);
  }
}

/** ferryd answered with a status other than OK. */
export class FerrydStatusError extends Error {
  override readonly name = 'FerrydStatusError';
  /**
   * pointer: where in the HTTP request the refused item is (e.g. /3 for the 4th flow of a bulk);
   * where: the same for people (e.g. "line 4: ").
   */
  constructor(readonly status: number, readonly statusName: string, readonly detail: string, readonly pointer?: string, where = '') {
    super(`${where}ferryd refused ${where ? 'it' : 'the request'}: ${statusName}${detail ? `: ${detail}` : ''}`);
  }
}
