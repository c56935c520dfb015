// Loads .proto files with @grpc/proto-loader, as a Node service does, and
// prints the names of what it found (a JSON list).
//   node load_protos.mjs '{"includeDirs": [...], "files": [...]}'
import protoLoader from "@grpc/proto-loader";

const { includeDirs, files } = JSON.parse(process.argv[2]);
const definition = protoLoader.loadSync(files, { includeDirs });
console.log(JSON.stringify(Object.keys(definition)));
