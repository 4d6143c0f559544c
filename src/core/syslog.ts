// RFC 3164 datagrams as syslog(3) writes them to /dev/log and OpenWrt's logd
// reads them: `<PRI>Mmm dd hh:mm:ss ugate[PID]: message`. logd takes the
// priority from <PRI> and drops the 16-character timestamp; `logread` then
// shows `daemon.info ugate[PID]: ...`.

import type { LogLevel } from './log.js'

/** LOG_DAEMON. */
const FACILITY = 3
/** syslog severities: err 3, warning 4, info 6, debug 7. */
const SEVERITY: Record<LogLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 }
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
/** logd reads at most 1024 bytes (LOG_LINE_SIZE); longer messages are cut here, marked. */
export const MAX_MESSAGE = 960

const two = (n: number) => String(n).padStart(2, '0')

/** The datagram for one message; `date` in local time as syslog(3) writes it. */
export function syslogDatagram(level: LogLevel, message: string, pid: number, date: Date, ident = 'ugate'): string {
  const stamp = `${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2, ' ')} ${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`
  const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message
  return `<${FACILITY * 8 + SEVERITY[level]}>${stamp} ${ident}[${pid}]: ${text}`
}
