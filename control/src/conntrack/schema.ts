// JSON schemas of the conntrack resources (request side; OpenAPI is generated from them). Values
// the schema cannot say (addresses, protocols, marks, labels, states) are checked by filter.ts,
// whose problems name the parameter the same way ("?src").
import { Type, Static } from '@fastify/type-provider-typebox';
import { CtTm } from '../gen/proto';

const Zone = Type.Integer({ minimum: 0, maximum: 65535 });
const Port = Type.Integer({ minimum: 0, maximum: 65535 });

export const FilterProps = {
  zone: Type.Optional(Zone),
  proto: Type.Optional(Type.String({ minLength: 1, maxLength: 16, description: 'tcp, udp, icmp, icmpv6, sctp or a number 0..255' })),
  src: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'original-direction source address or prefix (v4 or v6); with either_dir, the reply direction\'s too' })),
  dst: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'original-direction destination address or prefix; with either_dir, the reply direction\'s too' })),
  sport: Type.Optional(Port),
  dport: Type.Optional(Port),
  state: Type.Optional(Type.String({ minLength: 1, maxLength: 16, description: 'TCP state (the higher of both peers): ESTABLISHED, TIME_WAIT, ...; implies proto=tcp' })),
  mark: Type.Optional(Type.String({ minLength: 1, maxLength: 24, description: 'VALUE or VALUE/MASK, decimal or 0x hex' })),
  label: Type.Optional(Type.String({ minLength: 1, maxLength: 72, description: '128-bit hex VALUE or VALUE/MASK' })),
  family: Type.Optional(Type.Union([Type.Literal('ipv4'), Type.Literal('ipv6')])),
  either_dir: Type.Optional(Type.Boolean({
    description: 'src/dst/sport/dport also match the reply tuple, which is the translated one for a NATed connection ' +
      '(conntrack -D with a partial tuple): a SNATed connection is selected by its translated source as dst, a DNATed one by its translated destination as src',
  })),
};

export const FilterQuery = Type.Object(FilterProps, { additionalProperties: false });
export type FilterQuery = Static<typeof FilterQuery>;

export const CURSOR_PATTERN = '^[0-9]{1,20}(\\+[0-9]{1,10})?$';

export const ListQuery = Type.Object(
  {
    ...FilterProps,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'a JSON page of at most this many entries instead of the NDJSON stream' })),
    cursor: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const ExpectationsQuery = Type.Object(
  {
    zone: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'only the expectations of this zone' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'a JSON page of at most this many expectations instead of the NDJSON stream' })),
    cursor: Type.Optional(Type.String({ pattern: CURSOR_PATTERN, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);
export type ExpectationsQuery = Static<typeof ExpectationsQuery>;

const Limit = Type.Integer({ minimum: 1, maximum: 4294967295 });

export const LimitsBody = Type.Object(
  {
    max_conns: Type.Optional(Type.Union([Limit, Type.Null()], { description: 'global maximum; null: back to ferryd\'s own' })),
    default_zone_limit: Type.Optional(Type.Union([Limit, Type.Null()], { description: 'limit of zones without their own; null: unlimited' })),
    zones: Type.Optional(Type.Array(Type.Object(
      {
        zone: Zone,
        limit: Type.Union([Type.Integer({ minimum: 0, maximum: 4294967295 }), Type.Null()], { description: '0 blocks new connections; null: the zone follows the default again' }),
      },
      { additionalProperties: false },
    ), { maxItems: 4096 })),
  },
  { additionalProperties: false },
);
export type LimitsBody = Static<typeof LimitsBody>;

/** OVS's timeout policy attribute names, in ct_tm order. */
export const TIMEOUT_ATTRS = Object.keys(CtTm).map((k) => k.toLowerCase()) as readonly string[];

/** Seconds; at most what ct_entry.timeout_ms (u32 ms) can count down from. */
export const MAX_TIMEOUT_SEC = 4294967;

export const TimeoutPolicyBody = Type.Object(
  Object.fromEntries(TIMEOUT_ATTRS.map((a) => [a, Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_SEC }))])),
  { additionalProperties: false, description: 'seconds by attribute; an attribute left out keeps ferryd\'s default' },
);
export type TimeoutPolicyBody = Record<string, number | undefined>;

export const ZoneParams = Type.Object({ zone: Zone }, { additionalProperties: false });
export type ZoneParams = Static<typeof ZoneParams>;

export const OptionsBody = Type.Object(
  {
    tcp_seq_check: Type.Optional(Type.Boolean({ description: 'false: TCP sequence numbers are not checked (OVS ct-disable-tcp-seq-chk)' })),
    events: Type.Optional(Type.Boolean({ description: 'ferryd publishes connection events even without a subscriber' })),
  },
  { additionalProperties: false },
);
export type OptionsBody = Static<typeof OptionsBody>;
