// JSON schemas of the flow resources (request side). Bodies that may be JSON or ovs-ofctl text are
// checked in the handlers with these compiled validators, so each error names its exact place.
import { Type, Static } from '@fastify/type-provider-typebox';
import { Compile } from 'typebox/compile';

export const PortRef = Type.Union([Type.Integer({ minimum: 0, maximum: 4294967295 }), Type.String({ minLength: 1, maxLength: 63 })]);
const IntOrString = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1, maxLength: 200 })]);

export const MatchValue = Type.Union([Type.String({ maxLength: 200 }), Type.Integer({ minimum: 0 }), Type.Boolean(), Type.Null()]);
export const FlowMatch = Type.Record(Type.String(), MatchValue);

export const SetFieldBody = Type.Object(
  { type: Type.Literal('set_field'), field: Type.String({ maxLength: 32 }), value: IntOrString },
  { additionalProperties: false },
);

export const NatBody = Type.Object(
  {
    type: Type.Optional(Type.Union([Type.Literal('src'), Type.Literal('dst')])),
    range: Type.Optional(Type.String({ maxLength: 120 })),
    persistent: Type.Optional(Type.Boolean()),
    hash: Type.Optional(Type.Boolean()),
    random: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

// One object shape for every action (not a union of shapes) so a bad action gets one precise error;
// which members an action type takes is checked by the flow compiler.
export const FlowActionBody = Type.Object(
  {
    type: Type.String({ maxLength: 32 }),
    port: Type.Optional(PortRef),
    table: Type.Optional(IntOrString),
    field: Type.Optional(Type.String({ maxLength: 32 })),
    value: Type.Optional(IntOrString),
    ethertype: Type.Optional(IntOrString),
    commit: Type.Optional(Type.Boolean()),
    force: Type.Optional(Type.Boolean()),
    zone: Type.Optional(IntOrString),
    alg: Type.Optional(Type.String({ maxLength: 8 })),
    nat: Type.Optional(NatBody),
    exec: Type.Optional(Type.Array(SetFieldBody, { maxItems: 2 })),
    max_len: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    reason: Type.Optional(Type.String({ maxLength: 16 })),
    data: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);

export const FlowBody = Type.Object(
  {
    table: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    cookie: Type.Optional(Type.String({ maxLength: 20 })),
    idle_timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    hard_timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    flags: Type.Optional(Type.Array(Type.Union([Type.Literal('send_flow_rem'), Type.Literal('reset_counts')]), { maxItems: 2 })),
    match: Type.Optional(FlowMatch),
    actions: Type.Array(FlowActionBody, { maxItems: 64 }),
  },
  { additionalProperties: false },
);
export type FlowBody = Static<typeof FlowBody>;

/** A flow selection (del-flows): match as an object or as ovs-ofctl text ("table=1,tcp,tp_dst=80"). */
export const FlowSelector = Type.Object(
  {
    table: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    cookie: Type.Optional(Type.String({ maxLength: 41 })),
    cookie_mask: Type.Optional(Type.String({ maxLength: 20 })),
    match: Type.Optional(Type.Union([FlowMatch, Type.String({ maxLength: 4096 })])),
    strict: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FlowSelector = Static<typeof FlowSelector>;

export const BundleBody = Type.Object(
  {
    ops: Type.Array(Type.Object(
      {
        op: Type.Union([Type.Literal('add'), Type.Literal('delete')]),
        flow: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.String({ maxLength: 8192 })])),
        id: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{16}$' })),
        ...FlowSelector.properties, // a delete by match selects as del-flows does
      },
      { additionalProperties: false },
    ), { maxItems: 1_000_000 }),
  },
  { additionalProperties: false },
);
export type BundleBody = Static<typeof BundleBody>;

export const FlowIdParams = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-fA-F]{16}$' }) },
  { additionalProperties: false },
);
export type FlowIdParams = Static<typeof FlowIdParams>;

export const TableParams = Type.Object(
  { table: Type.Integer({ minimum: 0, maximum: 254 }) },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  {
    table: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
    cookie: Type.Optional(Type.String({ maxLength: 41 })),
    cookie_mask: Type.Optional(Type.String({ maxLength: 20 })),
    match: Type.Optional(Type.String({ maxLength: 4096 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('ofctl')])),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const DeleteQuery = Type.Object(
  {
    table: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
    cookie: Type.Optional(Type.String({ maxLength: 41 })),
    cookie_mask: Type.Optional(Type.String({ maxLength: 20 })),
  },
  { additionalProperties: false },
);
export type DeleteQuery = Static<typeof DeleteQuery>;

export const checkFlowBody = Compile(FlowBody);
export const checkSelector = Compile(FlowSelector);
export const checkBundle = Compile(BundleBody);
