import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  NBD_DEFAULT_PORT,
  addressFromOptions,
  formatNbdUri,
  parseNbdUri,
  resolveNbdAddress,
  type NbdAddress,
} from '../../../src/nbd/client/address.js';

const exportName = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\0'));
const hostName = fc.domain();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 1, max: 65535 });
const socketPath = fc
  .array(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 })
  .map((parts) => '/' + parts.join('/'));

const tls = fc.constantFrom({}, { tls: true as const });
const address: fc.Arbitrary<NbdAddress> = fc.oneof(
  fc.tuple(fc.record({ transport: fc.constant('tcp' as const), host: fc.oneof(hostName, ipv6), port, exportName }), tls).map(([a, t]) => ({ ...a, ...t })),
  fc.tuple(fc.record({ transport: fc.constant('unix' as const), path: socketPath, exportName }), tls).map(([a, t]) => ({ ...a, ...t })),
);

describe('NBD URI parsing', () => {
  it('parses what it formats (round trip over arbitrary names, hosts, ports, socket paths)', () => {
    fc.assert(
      fc.property(address, (a) => {
        expect(parseNbdUri(formatNbdUri(a))).toEqual(a);
      }),
      { numRuns: 300 },
    );
  });

  it('reads the forms qemu and libnbd document', () => {
    expect(parseNbdUri('nbd://example.com/disk')).toEqual({ transport: 'tcp', host: 'example.com', port: NBD_DEFAULT_PORT, exportName: 'disk' });
    expect(parseNbdUri('nbd://127.0.0.1:10810')).toEqual({ transport: 'tcp', host: '127.0.0.1', port: 10810, exportName: '' });
    expect(parseNbdUri('nbd://[::1]:5000/a%20b')).toEqual({ transport: 'tcp', host: '::1', port: 5000, exportName: 'a b' });
    expect(parseNbdUri('nbd:///x')).toEqual({ transport: 'tcp', host: 'localhost', port: NBD_DEFAULT_PORT, exportName: 'x' });
    expect(parseNbdUri('nbd+unix:///?socket=/tmp/s.sock')).toEqual({ transport: 'unix', path: '/tmp/s.sock', exportName: '' });
    expect(parseNbdUri('nbd+unix:///exp?socket=/tmp/s&tls=off')).toEqual({ transport: 'unix', path: '/tmp/s', exportName: 'exp' });
  });

  it('keeps export names verbatim, dot segments and inner slashes included', () => {
    expect(parseNbdUri('nbd://h/a/../b').exportName).toBe('a/../b');
    expect(parseNbdUri('nbd://h/.').exportName).toBe('.');
    expect(parseNbdUri('nbd://h//lead').exportName).toBe('/lead');
  });

  it('reads the TLS schemes as addresses that need TLS', () => {
    expect(parseNbdUri('nbds://h:7/x')).toEqual({ transport: 'tcp', host: 'h', port: 7, exportName: 'x', tls: true });
    expect(parseNbdUri('NBDS+UNIX:///x?socket=/s')).toEqual({ transport: 'unix', path: '/s', exportName: 'x', tls: true });
    expect(formatNbdUri({ transport: 'tcp', host: '::1', port: NBD_DEFAULT_PORT, exportName: '', tls: true })).toBe('nbds://[::1]/');
    expect(() => parseNbdUri('nbds+unix://h/x?socket=/s')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => parseNbdUri('nbds://h/x?socket=/s')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('refuses vsock schemes with ENOTSUP', () => {
    for (const uri of ['nbd+vsock://1:2/x', 'nbds+vsock://1:2/x']) {
      expect(() => parseNbdUri(uri)).toThrow(expect.objectContaining({ code: 'ENOTSUP' }));
    }
  });

  it('refuses malformed URIs with EINVAL', () => {
    for (const uri of [
      'http://h/x',
      'nbd:/h/x',
      'nbd://h:0/x',
      'nbd://h:65536/x',
      'nbd://h:12a/x',
      'nbd://[::1/x',
      // IPv6 needs brackets: "::1" would read as host ":" port 1.
      'nbd://::1/x',
      'nbd://fe80::1/x',
      'nbd://h/%zz',
      'nbd://h/x?socket=/s',
      'nbd+unix:///x',
      'nbd+unix://host/x?socket=/s',
      'nbd+unix:///x?socket=/a&socket=/b',
      'nbd://h/a%00b',
      `nbd://h/${'x'.repeat(4097)}`,
    ]) {
      expect(() => parseNbdUri(uri), uri).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });

  it('reads URIs as libnbd does: user information and fragments ignored, ; between parameters, zone ids %25, leading zeros in ports', () => {
    expect(parseNbdUri('nbd://user@h/x')).toEqual({ transport: 'tcp', host: 'h', port: NBD_DEFAULT_PORT, exportName: 'x' });
    expect(parseNbdUri('nbds://alice:pw@127.0.0.1:20809/x')).toEqual({ transport: 'tcp', host: '127.0.0.1', port: 20809, exportName: 'x', tls: true });
    expect(parseNbdUri('nbd://h/x#frag')).toMatchObject({ exportName: 'x' });
    expect(parseNbdUri('nbd+unix:///x?socket=/run/a.sock;tls-certificates=/tmp')).toMatchObject({ transport: 'unix', path: '/run/a.sock' });
    expect(parseNbdUri('nbd+unix:///x?foo=1;socket=/s')).toMatchObject({ path: '/s' });
    const zoned = parseNbdUri('nbd://[fe80::1%25eth0]:1/x');
    expect(zoned).toMatchObject({ host: 'fe80::1%eth0', port: 1 });
    expect(formatNbdUri(zoned)).toBe('nbd://[fe80::1%25eth0]:1/x');
    expect(parseNbdUri(formatNbdUri(zoned))).toEqual(zoned);
    expect(parseNbdUri('nbd://127.0.0.1:020809/x')).toMatchObject({ port: 20809 });
    expect(parseNbdUri('nbd://[::1]:00010809/x')).toMatchObject({ host: '::1', port: 10809 });
  });

  it('accepts the object form and rejects ambiguous or incomplete ones', () => {
    expect(addressFromOptions({ host: 'h' })).toEqual({ transport: 'tcp', host: 'h', port: NBD_DEFAULT_PORT, exportName: '' });
    expect(addressFromOptions({ path: '/s', exportName: 'e' })).toEqual({ transport: 'unix', path: '/s', exportName: 'e' });
    expect(resolveNbdAddress({ host: 'h', port: 7 })).toMatchObject({ port: 7 });
    for (const bad of [{}, { host: 'h', path: '/s' }, { host: '' }, { path: '/s', port: 1 }, { host: 'h', port: 0 }, { host: 'h', exportName: 'a\0' }]) {
      expect(() => addressFromOptions(bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });
});

describe('export names UTF-8 cannot encode', () => {
  const lone = ['disk\ud800', '\udc00', 'a\udfffb', '\ud800\ud800'];

  it('are refused with EINVAL in options and URIs; well-formed pairs are fine', () => {
    for (const name of lone) {
      expect(() => resolveNbdAddress({ path: '/s', exportName: name }), JSON.stringify(name)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expect(() => parseNbdUri(`nbd+unix:///${encodeURIComponent('x')}${name}?socket=/s`), JSON.stringify(name)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
    expect(resolveNbdAddress({ path: '/s', exportName: 'disk\ud83d\ude00' }).exportName).toBe('disk😀');
  });

  it('NbdClient.connect refuses one given as an option before opening a socket (a server must never see U+FFFD instead)', async () => {
    const { createServer } = await import('node:net');
    const { tmpSocketPath } = await import('../../helpers/peers.js');
    const { NbdClient } = await import('../../../src/nbd/client/index.js');
    const socket = tmpSocketPath();
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(socket.path, r));
    try {
      for (const target of [{ path: socket.path, exportName: 'disk\ud800' }, `nbd+unix:///?socket=${socket.path}`]) {
        const options = typeof target === 'string' ? { exportName: 'disk\ud800' } : {};
        await expect(NbdClient.connect(target, options)).rejects.toMatchObject({ code: 'EINVAL' });
      }
      expect(connections).toBe(0);
    } finally {
      await new Promise((r) => server.close(r));
      socket.remove();
    }
  });
});
