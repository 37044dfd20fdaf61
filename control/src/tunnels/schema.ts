// JSON schemas of the tunnel, neighbour and STT option resources (request side; OpenAPI is generated
// from them). What a schema cannot say (addresses, prefixes, MACs, keys, which ports are ethdevs) is
// checked by the service, whose problems name the field the same way ("/local_ip").
import { Type, Static } from '@fastify/type-provider-typebox';
import { MAX_PORTS, STT_PORT } from '../gen/proto';

export const NAME_PATTERN = '^[A-Za-z0-9_.-]{1,32}$';

const Name = Type.String({ pattern: NAME_PATTERN, description: 'the tunnel\'s name, also its port name in flows (output:NAME)' });

export const DEFAULTS = { key: '0', dst_port: STT_PORT, underlay_mtu: 1500, tos: 0, ttl: 64 } as const;

const TunnelProps = {
  port: Type.Optional(Type.Integer({
    minimum: 0, maximum: MAX_PORTS - 1,
    description: 'OpenFlow port number, from ferryd\'s ethdev count to 31; default: the lowest one no tunnel uses',
  })),
  local_ip: Type.String({ minLength: 1, maxLength: 18, description: 'a.b.c.d/plen (or a.b.c.d: /32): this end\'s address and the underlay subnet' }),
  remote_ip: Type.String({ minLength: 1, maxLength: 15, description: 'a.b.c.d, or "flow": the flow sets tun_dst (OVS remote_ip=flow)' }),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 20, description: 'STT context id: decimal or 0x hex u64, or "flow" (tun_id from the flow); default "0"' })),
  dst_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: `default ${STT_PORT}` })),
  underlay_port: Type.Integer({ minimum: 0, maximum: MAX_PORTS - 1, description: 'the ethdev port the encapsulated packets leave and arrive on' }),
  underlay_mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 9216, description: 'IP MTU of the underlay (default 1500); segments are sized to it' })),
  gateway: Type.Optional(Type.String({ minLength: 1, maxLength: 15, description: 'a.b.c.d: next hop for remotes off the local subnet' })),
  tos: Type.Optional(Type.Integer({ minimum: 0, maximum: 255, description: 'outer IP TOS (default 0)' })),
  ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'outer IP TTL (default 64)' })),
};

export const TunnelBody = Type.Object({ name: Name, ...TunnelProps }, { additionalProperties: false });
export type TunnelBody = Static<typeof TunnelBody>;

/** PUT /v1/tunnels/{name}: the name is the path's (a name in the body must be the same). */
export const TunnelPutBody = Type.Object({ name: Type.Optional(Name), ...TunnelProps }, { additionalProperties: false });
export type TunnelPutBody = Static<typeof TunnelPutBody>;

export const TunnelParams = Type.Object({ name: Name }, { additionalProperties: false });
export type TunnelParams = Static<typeof TunnelParams>;

export const NeighbourParams = Type.Object(
  {
    port: Type.Integer({ minimum: 0, maximum: MAX_PORTS - 1, description: 'the underlay ethdev port' }),
    ip: Type.String({ minLength: 7, maxLength: 15, description: 'a.b.c.d' }),
  },
  { additionalProperties: false },
);
export type NeighbourParams = Static<typeof NeighbourParams>;

export const NeighbourBody = Type.Object(
  { mac: Type.String({ minLength: 11, maxLength: 17, description: 'xx:xx:xx:xx:xx:xx, unicast' }) },
  { additionalProperties: false },
);
export type NeighbourBody = Static<typeof NeighbourBody>;

export const OPTION_DEFAULTS = { reasm_timeout_ms: 100, reasm_mem_max: 4194304, neigh_timeout_s: 300, neigh_retries: 3 } as const;

export const SttOptionsBody = Type.Object(
  {
    reasm_timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000, description: 'a frame not whole this long after its first segment is dropped (default 100)' })),
    reasm_mem_max: Type.Optional(Type.Integer({ minimum: 65536, maximum: 1073741824, description: 'bytes each worker\'s reassembler may hold, LRU eviction above (default 4194304)' })),
    neigh_timeout_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'a learned neighbour is forgotten this long after it was last confirmed (default 300)' })),
    neigh_retries: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'ARP requests before held frames are dropped (default 3)' })),
  },
  { additionalProperties: false, description: 'fields left out stay as they are' },
);
export type SttOptionsBody = Static<typeof SttOptionsBody>;
