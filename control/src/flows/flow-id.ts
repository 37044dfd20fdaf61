// Flow identity: a deterministic 64-bit hash of what makes two flows "the same" (OpenFlow add).

export interface FlowKey {
  table: number;
  priority: number;
  /** Resolved port id; undefined = any port. */
  inPort?: number;
}

/** FNV-1a 64 of the UTF-8 bytes of s. */
export function fnv1a64(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

/** Canonical text of a flow key: fixed field order, wildcards omitted. */
export function canonicalKey(k: FlowKey): string {
  const parts = [`table=${k.table}`, `priority=${k.priority}`];
  if (k.inPort !== undefined) parts.push(`in_port=${k.inPort}`);
  return parts.join(',');
}

export function flowId(k: FlowKey): bigint {
  return fnv1a64(canonicalKey(k));
}

export function formatFlowId(id: bigint): string {
  return id.toString(16).padStart(16, '0');
}

/** Parses a 16-hex-digit flow id (as shown by the API); null if malformed. */
export function parseFlowId(s: string): bigint | null {
  return /^[0-9a-fA-F]{16}$/.test(s) ? BigInt('0x' + s) : null;
}

/** Parses a 64-bit cookie given as "0x..." hex or decimal; null if malformed or out of range. */
export function parseCookie(s: string): bigint | null {
  if (!/^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(s)) return null;
  const v = BigInt(s);
  return v <= 0xffffffffffffffffn ? v : null;
}

export function formatCookie(v: bigint): string {
  return '0x' + v.toString(16).padStart(16, '0');
}
