// JSON schemas of the flow resource (request side; validated by TypeBox, unknown fields rejected).
import { Type, Static } from '@fastify/type-provider-typebox';

export const PortRef = Type.Union([Type.Integer({ minimum: 0, maximum: 65534 }), Type.String({ minLength: 1, maxLength: 63 })]);

export const FlowMatch = Type.Object(
  { in_port: Type.Optional(PortRef) },
  { additionalProperties: false },
);

// One object shape for every action (not a union of shapes) so a bad action gets one precise error.
export const FlowActionBody = Type.Object(
  {
    type: Type.Union([Type.Literal('output'), Type.Literal('drop')]),
    port: Type.Optional(PortRef),
  },
  { additionalProperties: false },
);

export const FlowBody = Type.Object(
  {
    table: Type.Optional(Type.Integer({ minimum: 0, maximum: 254 })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    match: FlowMatch,
    actions: Type.Array(FlowActionBody, { minItems: 1, maxItems: 1 }),
    cookie: Type.Optional(Type.String({ maxLength: 20 })),
  },
  { additionalProperties: false },
);
export type FlowBody = Static<typeof FlowBody>;

export const FlowIdParams = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-fA-F]{16}$' }) },
  { additionalProperties: false },
);
export type FlowIdParams = Static<typeof FlowIdParams>;
