// The ubus object `ugate`: its methods and their argument signatures
// (`ubus -v list ugate`). status and connections answer what the admin
// socket answers; reload is SIGHUP; close ends one connection by id.

import { ARG } from '../core/ubus/client.js'
import { STATUS } from '../core/ubus/message.js'
import { type ListenerView, closeConn, connectionsView, statusView } from './admin.js'
import type { GatewayContext } from './session.js'
import type { JsonObject, UbusMethod } from './ubus.js'

export function ugateMethods(
  ctx: GatewayContext,
  listeners: ListenerView,
  reload: () => void,
): Record<string, UbusMethod> {
  return {
    status: { args: {}, call: () => statusView(ctx, listeners) as unknown as JsonObject },
    connections: { args: {}, call: () => connectionsView(ctx) as unknown as JsonObject },
    reload: {
      args: {},
      call: () => {
        reload()
        return {}
      },
    },
    close: {
      args: { id: ARG.INT32 },
      call: (args) => {
        const id = args.id
        if (typeof id !== 'number') return STATUS.INVALID_ARGUMENT
        return closeConn(ctx, { network: 'tcp', id }) ? { closed: id } : STATUS.NOT_FOUND
      },
    },
  }
}
