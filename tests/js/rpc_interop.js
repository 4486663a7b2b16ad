// rpc_interop.js — an independent gRPC implementation (@grpc/grpc-js) calls
// meshwan's C server (proto/rpc.c via tests/rpc/rpc_test serve):
//   1. Enroll over server-authenticated TLS (no client certificate), checks
//      the decoded EnrollResponse;
//   2. Enroll with a bad token -> UNAUTHENTICATED with its message;
//   3. Session over mutual TLS: Hello -> snapshot (version 42) + keepalive,
//      Ack, half-close -> status OK;
//   4. Session without a client certificate on the enrollment port ->
//      UNAUTHENTICATED.
// Usage: node rpc_interop.js PROTO_DIR CERT_DIR MTLS_PORT ENROLL_PORT
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [protoDir, certDir, mtlsPort, enrollPort] = process.argv.slice(2);
if (!enrollPort) {
  console.error('usage: node rpc_interop.js PROTO_DIR CERT_DIR MTLS_PORT ENROLL_PORT');
  process.exit(2);
}
const def = loader.loadSync('meshwan/v1/meshwan.proto', {
  includeDirs: [protoDir], keepCase: true, longs: String, enums: String,
  defaults: true, oneofs: true,
});
const v1 = grpc.loadPackageDefinition(def).meshwan.v1;
const read = (f) => fs.readFileSync(path.join(certDir, f));
const serverAuth = grpc.credentials.createSsl(read('ca.pem'));
const mutual = grpc.credentials.createSsl(read('ca.pem'), read('client.key'),
  read('client.pem'));
const deadline = () => new Date(Date.now() + 10000);
// Check the server's certificate by its DNS name (it also carries the IP);
// node refuses an IP address as TLS server name.
const opts = { 'grpc.ssl_target_name_override': 'localhost' };

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}

function enroll(client, token) {
  return new Promise((resolve) => {
    client.Enroll({ token, csr_der: Buffer.from('csr-bytes'),
      software_version: 'node interop' }, { deadline: deadline() },
    (err, resp) => resolve({ err, resp }));
  });
}

function session(client, hello, onMsg) {
  return new Promise((resolve) => {
    const call = client.Session({ deadline: deadline() });
    const got = [];
    call.on('data', (m) => { got.push(m); onMsg(call, m); });
    call.on('error', (err) => resolve({ err, got }));
    call.on('status', (st) => { if (st.code === grpc.status.OK) resolve({ err: null, got, st }); });
    call.write({ hello });
  });
}

async function main() {
  const enrollClient = new v1.Enrollment(`127.0.0.1:${enrollPort}`, serverAuth, opts);
  let r = await enroll(enrollClient, 'good-token');
  check(!r.err, 'Enroll over server-auth TLS succeeded');
  check(r.resp.site_id === '1', 'EnrollResponse.site_id = 1');
  check(r.resp.certificate_der.toString() === 'csr-bytes', 'certificate_der echoes the CSR');
  check(r.resp.ca_chain_der.length === 2 && r.resp.ca_chain_der[1].toString() === 'ca2',
    'ca_chain_der has 2 entries');
  check(r.resp.controller_name === 'controller', 'controller_name');

  r = await enroll(enrollClient, 'bad-token');
  check(r.err && r.err.code === grpc.status.UNAUTHENTICATED &&
    r.err.details === 'token unknown', 'bad token -> UNAUTHENTICATED "token unknown"');

  const edge = new v1.Edge(`127.0.0.1:${mtlsPort}`, mutual, opts);
  const s = await session(edge, {
    site_id: 1, applied_version: 41, software_version: 'meshwan-edge test',
    backend: 'BACKEND_UESP', features: 3,
  }, (call, m) => {
    if (m.body === 'keepalive') {
      call.write({ ack: { version: 42, ok: true } });
      call.end();
    }
  });
  check(!s.err, 'Session over mutual TLS ended with status OK');
  check(s.got.length === 2, 'two ControllerMessages received');
  check(s.got[0].body === 'snapshot' && s.got[0].snapshot.version === '42' &&
    s.got[0].snapshot.site.id === '1' && s.got[0].snapshot.site.name === 'site-1',
    'snapshot version 42 for site 1');
  check(s.got[1].body === 'keepalive' && s.got[1].keepalive.controller_time === '1700000000',
    'keepalive controller_time');

  const noCert = new v1.Edge(`127.0.0.1:${enrollPort}`, serverAuth, opts);
  const n = await session(noCert, { site_id: 1, applied_version: 41 }, () => {});
  check(n.err && n.err.code === grpc.status.UNAUTHENTICATED,
    'Session without a client certificate -> UNAUTHENTICATED');
  enrollClient.close(); edge.close(); noCert.close();
}

main().then(() => process.exit(0), (e) => { console.error('FAIL: ' + e.message); process.exit(1); });
