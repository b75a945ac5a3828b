// Loads extension.js outside VS Code, with stand-ins for the `vscode` module and for
// `vscode-languageclient/node`, and checks what it asks the client library to start.
// The stand-in client spawns the configured command the way the real one does, so a
// missing executable fails with ENOENT. Run with `npm run test:extension`.
// Set MEDIC_BIN to a medic executable to also check that `MEDIC_BIN lsp` starts.
'use strict';

const assert = require('assert');
const childProcess = require('child_process');
const Module = require('module');
const path = require('path');

const state = { settings: {}, errors: [], clients: [], commands: {} };

const fakeVscode = {
  workspace: {
    workspaceFolders: [{ uri: { fsPath: '/work/space' } }],
    getConfiguration: (section) => {
      assert.strictEqual(section, 'medic');
      return { get: (key) => state.settings[key] };
    },
    createFileSystemWatcher: (glob) => ({ glob, dispose() {} }),
    onDidChangeConfiguration: () => ({ dispose() {} }),
  },
  window: {
    createOutputChannel: (name) => ({ name, appendLine() {}, dispose() {} }),
    showErrorMessage: (message) => {
      state.errors.push(message);
      return Promise.resolve(undefined);
    },
  },
  commands: {
    registerCommand: (name, fn) => {
      state.commands[name] = fn;
      return { dispose() {} };
    },
    executeCommand: () => Promise.resolve(),
  },
};

class FakeLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, stopped: false });
    state.clients.push(this);
  }
  start() {
    return new Promise((resolve, reject) => {
      const child = childProcess.spawn(this.serverOptions.command, this.serverOptions.args, {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      this.child = child;
      child.on('error', reject);
      child.on('spawn', () => resolve());
    });
  }
  stop() {
    this.stopped = true;
    if (this.child && this.child.exitCode === null) this.child.kill();
    return Promise.resolve();
  }
  dispose() {
    return this.stop();
  }
}

const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  if (request === 'vscode') return fakeVscode;
  if (request === 'vscode-languageclient/node') {
    return { LanguageClient: FakeLanguageClient, TransportKind: { stdio: 0 } };
  }
  return originalLoad.call(this, request, parent, isMain);
};

const extension = require(path.join(__dirname, '..', 'extension.js'));
const context = () => ({ subscriptions: [] });

let passes = 0;
let failures = 0;
async function check(description, fn) {
  state.errors = [];
  state.clients = [];
  try {
    await fn();
    passes += 1;
    console.log(`ok   ${description}`);
  } catch (error) {
    failures += 1;
    console.error(`FAIL ${description}\n     ${error.message.split('\n').join('\n     ')}`);
  } finally {
    await extension.deactivate();
  }
}

async function main() {
  await check('activate starts `<path> lsp <extraArgs>` on stdio for file:// ops documents', async () => {
    state.settings = { 'server.path': process.execPath, 'server.extraArgs': ['--version-check'] };
    await extension.activate(context());
    assert.strictEqual(state.clients.length, 1);
    const [client] = state.clients;
    assert.strictEqual(client.serverOptions.command, process.execPath);
    // `node lsp --version-check` fails later, but it spawns, which is all this checks.
    assert.deepStrictEqual(client.serverOptions.args, ['lsp', '--version-check']);
    assert.strictEqual(client.serverOptions.transport, 0);
    assert.deepStrictEqual(client.clientOptions.documentSelector, [{ scheme: 'file', language: 'ops' }]);
    assert.strictEqual(client.clientOptions.synchronize.fileEvents.glob, '**/*.ops');
    assert.deepStrictEqual(state.errors, []);
    assert.ok(state.commands['medic.restartServer'], 'medic.restartServer is registered');
    await extension.deactivate();
    assert.ok(client.stopped, 'deactivate stops the client');
  });

  await check('the default executable is `medic`, and ~ and ${workspaceFolder} are expanded', async () => {
    const config = (settings) => ({ get: (key) => settings[key] });
    assert.strictEqual(extension.serverCommand(config({})), 'medic');
    assert.strictEqual(
      extension.serverCommand(config({ 'server.path': '${workspaceFolder}/target/debug/medic' })),
      '/work/space/target/debug/medic',
    );
    assert.strictEqual(
      extension.serverCommand(config({ 'server.path': '~/bin/medic' })),
      path.join(require('os').homedir(), 'bin', 'medic'),
    );
    assert.deepStrictEqual(extension.serverArgs(config({})), ['lsp']);
  });

  await check('a missing executable gives a clear error that mentions cargo install', async () => {
    state.settings = { 'server.path': '/nonexistent/medic-for-test', 'server.extraArgs': [] };
    await extension.activate(context());
    assert.strictEqual(state.errors.length, 1, `errors: ${JSON.stringify(state.errors)}`);
    const [message] = state.errors;
    assert.ok(message.includes('/nonexistent/medic-for-test'), message);
    assert.ok(message.includes('cargo install --path cli'), message);
    assert.ok(message.includes('medic.server.path'), message);
  });

  if (process.env.MEDIC_BIN) {
    await check(`MEDIC_BIN=${process.env.MEDIC_BIN}: \`medic lsp\` answers initialize`, async () => {
      const child = childProcess.spawn(process.env.MEDIC_BIN, ['lsp'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { processId: process.pid, rootUri: null, capabilities: {} },
      });
      child.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      const reply = await new Promise((resolve, reject) => {
        let data = '';
        const timer = setTimeout(() => reject(new Error(`no answer; got ${JSON.stringify(data)}`)), 10000);
        child.stdout.on('data', (chunk) => {
          data += chunk;
          const start = data.indexOf('\r\n\r\n');
          if (start >= 0) {
            const length = Number(/Content-Length: (\d+)/i.exec(data)[1]);
            if (Buffer.byteLength(data.slice(start + 4)) >= length) {
              clearTimeout(timer);
              resolve(JSON.parse(data.slice(start + 4)));
            }
          }
        });
        child.on('error', reject);
      });
      child.kill();
      assert.strictEqual(reply.id, 1);
      assert.ok(reply.result.capabilities.hoverProvider, JSON.stringify(reply));
      assert.strictEqual(reply.result.serverInfo.name, 'medic');
    });
  }

  console.log(`\n${passes} passed, ${failures} failed`);
  if (failures > 0) {
    console.error(`extension test failed: ${failures} check(s) did not pass`);
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(`extension test could not run: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
