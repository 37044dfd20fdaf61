// Request bodies: writers for the channel, laid out with the generated offsets.
import { FLOW_ADD, FLOW_DEL, FlowAction, PORT_ANY } from './gen/proto';

/** Writes a request body at bodyOff and returns its length in bytes. */
export type BodyWriter = (dv: DataView, bodyOff: number) => number;

export interface FlowAddBody {
  id: bigint;
  priority: number;
  tableId: number;
  action: FlowAction;
  /** PORT_ANY for a wildcard. */
  inPort: number;
  /** Ignored by ferryd for DROP; PORT_ANY there by convention. */
  outPort: number;
}

const FA = FLOW_ADD.fields;
const FD = FLOW_DEL.fields;

export function flowAddBody(f: FlowAddBody): BodyWriter {
  return (dv, off) => {
    new Uint8Array(dv.buffer, dv.byteOffset + off, FLOW_ADD.size).fill(0); // padding too
    dv.setBigUint64(off + FA.id.offset, f.id, true);
    dv.setUint32(off + FA.priority.offset, f.priority, true);
    dv.setUint8(off + FA.table_id.offset, f.tableId);
    dv.setUint8(off + FA.action.offset, f.action);
    dv.setUint16(off + FA.in_port.offset, f.inPort, true);
    dv.setUint16(off + FA.out_port.offset, f.action === FlowAction.OUTPUT ? f.outPort : PORT_ANY, true);
    return FLOW_ADD.size;
  };
}

export function flowDelBody(id: bigint): BodyWriter {
  return (dv, off) => {
    dv.setBigUint64(off + FD.id.offset, id, true);
    return FLOW_DEL.size;
  };
}
