/**
 * STARTTLS and bytes injected in plain text: whatever follows the server's ACK before the TLS
 * handshake did not come over TLS, so the client must not parse it as option replies (someone in
 * the middle could append a forged GO answer). It fails the connection instead — before any TLS.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../src/nbd/client/index.js';
import { HandshakeFlag, Opt, encodeAck, encodeGreeting, encodeInfoExport } from '../../../src/nbd/protocol/index.js';

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

describe('NbdClient STARTTLS', () => {
  it('refuses option replies that arrive in plain text right after the STARTTLS acknowledgement', async () => {
    let handshakes = 0;
    server = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      s.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
        if (got < 4 + 16) return; // client flags, then the STARTTLS option
        // The ACK and, in the same write, a forged GO answer for a 19 MiB export.
        s.write(Buffer.concat([encodeAck(Opt.STARTTLS), encodeInfoExport(Opt.GO, 0x1234000, 1), encodeAck(Opt.GO)]));
        s.once('data', () => handshakes++); // a TLS ClientHello would come next
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const outcome = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' }, { tls: {}, connectTimeout: 3000, reconnect: false }).then(
      async (c) => (await c.close(), 'connected'),
      (e: { code: string; message: string }) => e,
    );
    expect(outcome).toMatchObject({ code: 'EIO', message: expect.stringMatching(/unencrypted bytes followed the STARTTLS/) });
    expect(handshakes).toBe(0);
  });
});
