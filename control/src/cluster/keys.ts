// Where a fleet's desired state lives in etcd (under a prefix, /ferry by default):
//
//   PREFIX/nodes/NODE                         a node's registration, under its lease:
//                                             {node_id, tunnel_ip, tunnel_plen, underlay_mac, underlay_port}
//   PREFIX/desired/all/NS/KEY                 desired state for every node
//   PREFIX/desired/node/NODE/NS/KEY           desired state for one node (wins over all/ for the same NS/KEY)
//
// NS/KEY are the namespaces and keys of ferry-control's own desired-state store (state/store.ts):
// flows/<flow id>, tunnels/<name>, neighbours/<port>/<ip>, stt-options/options, ct-settings/...,
// ct-zone-limits/<zone>, ct-timeout-policies/<zone>; values are the same JSON. KEY is URI-encoded
// (a neighbour's key has a slash). One writer per key: a node writes a key only with a transaction
// that checks the key's revision is the one it last saw.

export type Scope = 'all' | 'node';

export interface DesiredKey {
  scope: Scope;
  /** the node of a node-scoped key */
  node?: string;
  ns: string;
  key: string;
}

export interface NodeRecord {
  node_id: string;
  tunnel_ip: string;
  tunnel_plen: number;
  underlay_mac: string;
  underlay_port: number;
}

export const NODE_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$/;

export class ClusterKeys {
  constructor(readonly prefix: string, readonly nodeId: string) {
    if (!/^\/[^\s]*[^/\s]$/.test(prefix)) throw new Error(`etcd prefix "${prefix}" must start with / and not end with one`);
    if (!NODE_ID_RE.test(nodeId)) throw new Error(`node id "${nodeId}" must be 1-40 letters, digits, '_', '.', '-'`);
  }

  get nodesPrefix(): string {
    return `${this.prefix}/nodes/`;
  }

  node(id = this.nodeId): string {
    return `${this.nodesPrefix}${id}`;
  }

  get desiredPrefix(): string {
    return `${this.prefix}/desired/`;
  }

  desired(scope: Scope, ns: string, key: string): string {
    return `${this.scopePrefix(scope)}${ns}/${encodeURIComponent(key)}`;
  }

  /** PREFIX/desired/all/ or PREFIX/desired/node/ME/ */
  scopePrefix(scope: Scope): string {
    return scope === 'all' ? `${this.desiredPrefix}all/` : `${this.desiredPrefix}node/${this.nodeId}/`;
  }

  /** A desired-state key back to its parts; null for anything else under the prefix. */
  parseDesired(k: string): DesiredKey | null {
    if (!k.startsWith(this.desiredPrefix)) return null;
    const rest = k.slice(this.desiredPrefix.length).split('/');
    let scope: Scope;
    let node: string | undefined;
    if (rest[0] === 'all') {
      scope = 'all';
      rest.shift();
    } else if (rest[0] === 'node' && rest.length >= 2) {
      scope = 'node';
      node = rest[1];
      rest.splice(0, 2);
    } else {
      return null;
    }
    if (rest.length !== 2 || !rest[0] || !rest[1]) return null;
    try {
      return { scope, node, ns: rest[0], key: decodeURIComponent(rest[1]) };
    } catch {
      return null;
    }
  }

  /** The node id of a registration key; null for anything else. */
  parseNode(k: string): string | null {
    if (!k.startsWith(this.nodesPrefix)) return null;
    const id = k.slice(this.nodesPrefix.length);
    return NODE_ID_RE.test(id) ? id : null;
  }
}
