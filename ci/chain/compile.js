// Compiles contracts/*.sol with the pinned solc-js (standard-JSON API) and writes one artifact per
// contract: { contractName, abi, bytecode, deployedBytecode } to the output directory.
// Settings are fixed here (evmVersion cancun: solc 0.8.37 defaults to osaka, which anvil 1.7.1
// does not run; optimizer on, 200 runs) so the output is byte-for-byte reproducible.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const [contractsDir, outDir] = process.argv.slice(2);
if (!contractsDir || !outDir) {
  console.error("usage: node compile.js <contracts dir> <output dir>");
  process.exit(2);
}

const sources = {};
for (const file of fs.readdirSync(contractsDir).filter((f) => f.endsWith(".sol")).sort()) {
  // Keys are bare file names so the metadata hash does not depend on where the repo lives.
  sources[file] = { content: fs.readFileSync(path.join(contractsDir, file), "utf8") };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, contract] of Object.entries(output.contracts[file])) {
    if (contract.evm.bytecode.object === "") continue; // interfaces
    const artifact = {
      contractName: name,
      compiler: `solc ${solc.version()}`,
      abi: contract.abi,
      bytecode: "0x" + contract.evm.bytecode.object,
      deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`${name}: ${contract.evm.deployedBytecode.object.length / 2} bytes deployed`);
  }
}
