// The ubus messages captured from the real ubusd (test/fixtures/ubus/README.md).
import { readFileSync } from 'node:fs'

export interface Captured {
  conn: number
  /** 's2c': ubusd → client; 'c2s': client → ubusd. */
  dir: 's2c' | 'c2s'
  bytes: Uint8Array
}

export function captured(name: 'real-session' | 'real-ugate'): Captured[] {
  const text = readFileSync(new URL(`../fixtures/ubus/${name}.txt`, import.meta.url), 'utf8')
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [conn, dir, hex] = line.split(' ')
      return { conn: Number(conn), dir: dir as 's2c' | 'c2s', bytes: new Uint8Array(Buffer.from(hex!, 'hex')) }
    })
}
