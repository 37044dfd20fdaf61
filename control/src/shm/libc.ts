// The only FFI in ferry-control: shm_open + mmap, used once per attach, never per message.
import * as fs from 'node:fs';
import * as ffi from '@2060.io/ffi-napi';
import * as ref from '@2060.io/ref-napi';

const O_RDONLY = 0;
const O_RDWR = 2;
const PROT_READ_WRITE = 3;
const MAP_SHARED = 1;

interface Libc {
  shm_open(name: string, oflag: number, mode: number): number;
  mmap(addr: Buffer, len: number, prot: number, flags: number, fd: number, off: number): Buffer;
}

let libc: Libc | null = null;
function lib(): Libc {
  if (libc) return libc;
  const defs = {
    shm_open: ['int', ['string', 'int', 'uint32']],
    mmap: ['pointer', ['pointer', 'size_t', 'int', 'int', 'int', 'int64']],
  };
  // glibc >= 2.34 has shm_open in libc proper; older ones in librt.
  for (const file of ['libc.so.6', 'librt.so.1']) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const l = ffi.Library(file, defs as any) as unknown as Libc;
      libc = l;
      return l;
    } catch {
      /* try the next one */
    }
  }
  throw new Error('cannot load shm_open/mmap from libc.so.6 or librt.so.1');
}

/** shm_open("/name"); returns the fd or throws an Error with .code = ENOENT/EACCES/... */
export function shmOpen(name: string, writable: boolean): number {
  const fd = lib().shm_open(name.startsWith('/') ? name : `/${name}`, writable ? O_RDWR : O_RDONLY, 0);
  if (fd < 0) {
    const errno = ffi.errno();
    const code = errno === 2 ? 'ENOENT' : errno === 13 ? 'EACCES' : `errno ${errno}`;
    const e = new Error(`shm_open(/${name.replace(/^\//, '')}) failed: ${code}`) as NodeJS.ErrnoException;
    e.code = code;
    e.errno = errno;
    throw e;
  }
  return fd;
}

/** fstat of a fresh shm_open of name (null if the segment does not exist). */
export function shmStat(name: string): fs.Stats | null {
  let fd: number;
  try {
    fd = shmOpen(name, false);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Maps size bytes of fd read-write and shared. The mapping is never unmapped: a view of an
 * unmapped range would crash the process, and segments are replaced only on ferryd restarts.
 */
export function mapShared(fd: number, size: number): Buffer {
  const p = lib().mmap(ref.NULL, size, PROT_READ_WRITE, MAP_SHARED, fd, 0);
  if (ref.isNull(p) || ref.hexAddress(p) === 'ffffffffffffffff') {
    throw new Error(`mmap of ${size} bytes failed: errno ${ffi.errno()}`);
  }
  return ref.reinterpret(p, size, 0);
}
