// Packets ferryd sent to the controller (controller action): the last few kept for the API, all counted.
import type { FerrydConnection } from './ferryd';
import type { FerryEvent, PacketInEvent } from './events';

export class PacketInLog {
  private readonly ring: PacketInEvent[] = [];
  /** packet-ins seen since start */
  total = 0;

  constructor(ferryd: FerrydConnection, readonly capacity = 256) {
    ferryd.on('event', (ev: FerryEvent) => {
      if (ev.type === 'packet_in') this.add(ev);
    });
  }

  add(ev: PacketInEvent): void {
    this.total++;
    this.ring.push(ev);
    if (this.ring.length > this.capacity) this.ring.shift();
  }

  /** Oldest first. */
  items(): readonly PacketInEvent[] {
    return this.ring;
  }
}
