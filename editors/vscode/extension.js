// VS Code extension for Medic runbooks: starts `medic lsp` as a language server for `.ops`
// files. Plain CommonJS, no build step.
'use strict';

const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

const INSTALL_HINT =
  'Install it with `cargo install --path cli` from the Medic repository, ' +
  'or set "medic.server.path" to the medic executable.';

/** @type {LanguageClient | undefined} */
let client;
/** @type {vscode.OutputChannel | undefined} */
let outputChannel;

/** The configured executable, with `~` and `${workspaceFolder}` expanded. */
function serverCommand(config) {
  let command = String(config.get('server.path') || 'medic').trim() || 'medic';
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  if (folder) {
    command = command.replace(/\$\{workspaceFolder\}/g, folder.uri.fsPath);
  }
  if (command === '~' || command.startsWith('~/')) {
    command = path.join(os.homedir(), command.slice(1));
  }
  return command;
}

function serverArgs(config) {
  const extra = config.get('server.extraArgs');
  return ['lsp', ...(Array.isArray(extra) ? extra.map(String) : [])];
}

async function startClient() {
  const config = vscode.workspace.getConfiguration('medic');
  const command = serverCommand(config);
  const args = serverArgs(config);

  /** @type {import('vscode-languageclient/node').ServerOptions} */
  const serverOptions = {
    command,
    args,
    transport: TransportKind.stdio,
  };
  /** @type {import('vscode-languageclient/node').LanguageClientOptions} */
  const clientOptions = {
    documentSelector: [{ scheme: 'file', language: 'ops' }],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.ops'),
    },
    outputChannel,
  };

  let candidate;
  try {
    candidate = new LanguageClient('medic', 'Medic language server', serverOptions, clientOptions);
  } catch (error) {
    // For example the client library's check of the VS Code version.
    showStartError(command, error);
    return;
  }
  client = candidate;
  try {
    await candidate.start();
  } catch (error) {
    client = undefined;
    showStartError(command, error);
    try {
      await candidate.dispose();
    } catch {
      // The client never ran: nothing to stop.
    }
  }
}

function showStartError(command, error) {
  const reason = error && error.message ? error.message : String(error);
  const notFound = /ENOENT|not found|no such file/i.test(reason);
  const message = notFound
    ? `Medic: the language server executable "${command}" was not found. ${INSTALL_HINT}`
    : `Medic: could not start the language server "${command} lsp": ${reason}. ${INSTALL_HINT}`;
  vscode.window.showErrorMessage(message, 'Open Settings').then((choice) => {
    if (choice === 'Open Settings') {
      vscode.commands.executeCommand('workbench.action.openSettings', 'medic.server');
    }
  });
}

async function stopClient() {
  const running = client;
  client = undefined;
  if (running) {
    try {
      await running.stop();
    } catch {
      // Already stopped, or it never started.
    }
  }
}

async function restartClient() {
  await stopClient();
  await startClient();
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  outputChannel = vscode.window.createOutputChannel('Medic');
  context.subscriptions.push(outputChannel);
  context.subscriptions.push(
    vscode.commands.registerCommand('medic.restartServer', restartClient),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('medic.server')) {
        restartClient();
      }
    }),
  );
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate, serverCommand, serverArgs };
