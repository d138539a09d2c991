#!/usr/bin/python3
"""A TF Serving gRPC client, written as TF Serving users write theirs.

It imports TF Serving's API modules (tensorflow_serving.apis.*_pb2 / *_pb2_grpc) and calls
PredictionService / ModelService / grpc.health.v1.Health over grpcio, so it works unchanged
against TF Serving, tfs-sim or fusebox: only --target differs. fusebox's interop tests run it
(tests/integration/grpc_interop_test.cc).

The modules come from the project's protos, generated at build time into
<build>/tests/python_stubs (tests/interop/CMakeLists.txt); put that folder on PYTHONPATH.
Needs Debian's python3-grpcio and python3-protobuf (scripts/install-deps.sh): run it with
/usr/bin/python3.

Every subcommand prints one JSON object on stdout:
  predict --model M [--version N | --label L] --values 1,2,5 [--shape 3] [--tensor-content]
      {"outputs": {"y": {"values": [...], "shape": [...], "dtype": "DT_FLOAT",
                         "encoding": "float_val"}},
       "model_spec": {...}, "initial_metadata": {...}, "trailing_metadata": {...}}
  predict-large --mib N      sends N MiB of float32 (tensor_content)
      {"request_bytes": ..., "output_length": ..., "mismatches": 0, ...}
  status --model M           {"model_version_status": [{"version": 1, "state": "AVAILABLE", ...}]}
  metadata --model M         {"model_spec": {...}, "type_url": ..., "signature_def": {...}}
  health [--service S]       {"status": "SERVING"}
  reflect [--symbol S ...]   server reflection: {"services": [...], "files": {"S": {"file": ...,
                             "services": {"tensorflow.serving.PredictionService": ["Predict", ...]},
                             "messages": [...]}}}; an unknown symbol gives {"error": ...} there
Options common to the subcommands: --timeout S (default 10), --metadata k=v ... (request
metadata), --max-message-mib N (client send/receive limit, default 256; -1: unlimited).

Exit codes: 0 success; 3 the call failed, with {"error": {"code": "UNAVAILABLE", "details": ...,
"initial_metadata": {...}, "trailing_metadata": {...}}} on stdout; 2 bad arguments; 4 missing
Python modules (grpc, protobuf or the generated stubs), explained on stderr.
"""

import argparse
import array
import base64
import json
import sys

EXIT_RPC_ERROR = 3
EXIT_MISSING_MODULES = 4


def exit_missing_modules(error, advice):
    sys.stderr.write(f"tfs_client.py: {error}: {advice}\n")
    sys.exit(EXIT_MISSING_MODULES)


try:
    import grpc
except ImportError as e:
    exit_missing_modules(e, f"install Debian's python3-grpcio and python3-protobuf "
                            f"(scripts/install-deps.sh) and run with /usr/bin/python3 "
                            f"(this is {sys.executable})")
try:
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    from tensorflow_serving.apis import get_model_metadata_pb2
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import error_codes_pb2
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    from google.protobuf import descriptor_pb2
except ImportError as e:
    exit_missing_modules(e, "the generated stubs are not importable; build the "
                            "fusebox_python_stubs target and set "
                            "PYTHONPATH=<build>/tests/python_stubs (python3-protobuf comes with "
                            "scripts/install-deps.sh)")

MIB = 1024 * 1024


def make_channel(target, max_message_mib):
    limit = -1 if max_message_mib < 0 else max_message_mib * MIB
    return grpc.insecure_channel(target, options=[
        ('grpc.max_send_message_length', limit),
        ('grpc.max_receive_message_length', limit),
    ])


def metadata_dict(pairs):
    """gRPC metadata (key, value) pairs as a dict; binary (-bin) values in base64."""
    out = {}
    for key, value in pairs or ():
        out[key] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
    return out


def model_spec_dict(spec):
    out = {"name": spec.name, "signature_name": spec.signature_name}
    if spec.HasField("version"):
        out["version"] = spec.version.value
    if spec.HasField("version_label"):
        out["version_label"] = spec.version_label
    return out


def set_model_spec(spec, args):
    spec.name = args.model
    if getattr(args, "version", None) is not None:
        spec.version.value = args.version
    if getattr(args, "label", None) is not None:
        spec.version_label = args.label
    if getattr(args, "signature", None) is not None:
        spec.signature_name = args.signature


def float32_bytes(values):
    """Little-endian float32 bytes, as TensorProto.tensor_content carries them."""
    floats = array.array("f", values)
    if sys.byteorder != "little":
        floats.byteswap()
    return floats.tobytes()


def float32_values(content):
    floats = array.array("f")
    floats.frombytes(content)
    if sys.byteorder != "little":
        floats.byteswap()
    return floats.tolist()


def tensor_dict(tensor):
    if tensor.tensor_content:
        values, encoding = float32_values(tensor.tensor_content), "tensor_content"
    else:
        values, encoding = list(tensor.float_val), "float_val"
    return {"values": values,
            "shape": [d.size for d in tensor.tensor_shape.dim],
            "dtype": types_pb2.DataType.Name(tensor.dtype),
            "encoding": encoding}


def predict_request(args, values, shape, tensor_content):
    request = predict_pb2.PredictRequest()
    set_model_spec(request.model_spec, args)
    x = request.inputs["x"]
    x.dtype = types_pb2.DT_FLOAT
    for size in shape:
        x.tensor_shape.dim.add().size = size
    if tensor_content:
        x.tensor_content = float32_bytes(values)
    else:
        x.float_val.extend(values)
    return request


def call_predict(args, request):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(args.channel)
    return stub.Predict.with_call(request, timeout=args.timeout, metadata=args.metadata)


def cmd_predict(args):
    values = [float(v) for v in args.values.split(",") if v.strip()]
    shape = [int(d) for d in args.shape.split(",")] if args.shape else [len(values)]
    request = predict_request(args, values, shape, args.tensor_content)
    response, call = call_predict(args, request)
    return {"outputs": {k: tensor_dict(v) for k, v in response.outputs.items()},
            "model_spec": model_spec_dict(response.model_spec),
            "initial_metadata": metadata_dict(call.initial_metadata()),
            "trailing_metadata": metadata_dict(call.trailing_metadata())}


def cmd_predict_large(args):
    count = args.mib * MIB // 4
    # x_i = i mod 1024: exact in float32, and so is 0.5 x + 2.
    values = [float(i % 1024) for i in range(count)]
    request = predict_request(args, values, [count], tensor_content=True)
    response, call = call_predict(args, request)
    y = tensor_dict(response.outputs["y"])["values"]
    mismatches = sum(1 for i, v in enumerate(y) if v != 0.5 * (i % 1024) + 2.0)
    return {"request_bytes": request.ByteSize(),
            "output_length": len(y),
            "mismatches": mismatches,
            "trailing_metadata": metadata_dict(call.trailing_metadata())}


def cmd_status(args):
    request = get_model_status_pb2.GetModelStatusRequest()
    set_model_spec(request.model_spec, args)
    stub = model_service_pb2_grpc.ModelServiceStub(args.channel)
    response = stub.GetModelStatus(request, timeout=args.timeout, metadata=args.metadata)
    return {"model_version_status": [
        {"version": s.version,
         "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
         "error_code": error_codes_pb2.Code.Name(s.status.error_code),
         "error_message": s.status.error_message}
        for s in response.model_version_status]}


def tensor_info_dict(info):
    return {"name": info.name,
            "dtype": types_pb2.DataType.Name(info.dtype),
            "shape": [d.size for d in info.tensor_shape.dim]}


def cmd_metadata(args):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    set_model_spec(request.model_spec, args)
    request.metadata_field.append("signature_def")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(args.channel)
    response = stub.GetModelMetadata(request, timeout=args.timeout, metadata=args.metadata)
    packed = response.metadata["signature_def"]
    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
    if not packed.Unpack(signature_def_map):
        raise SystemExit(f"tfs_client.py: metadata['signature_def'] is a {packed.type_url}, "
                         f"not a SignatureDefMap")
    return {"model_spec": model_spec_dict(response.model_spec),
            "type_url": packed.type_url,
            "signature_def": {
                name: {"method_name": sig.method_name,
                       "inputs": {k: tensor_info_dict(v) for k, v in sig.inputs.items()},
                       "outputs": {k: tensor_info_dict(v) for k, v in sig.outputs.items()}}
                for name, sig in signature_def_map.signature_def.items()}}


def cmd_health(args):
    stub = health_pb2_grpc.HealthStub(args.channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=args.service),
                          timeout=args.timeout, metadata=args.metadata)
    return {"status": health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}


def reflect_once(stub, request, args):
    # One stream per question: a server sends each file at most once per stream.
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=args.timeout,
                                                metadata=args.metadata))
    return responses[0]


def cmd_reflect(args):
    stub = reflection_pb2_grpc.ServerReflectionStub(args.channel)
    listed = reflect_once(stub, reflection_pb2.ServerReflectionRequest(list_services=""), args)
    result = {"services": sorted(s.name for s in listed.list_services_response.service),
              "files": {}}
    for symbol in args.symbol:
        response = reflect_once(
            stub, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol), args)
        if response.WhichOneof("message_response") == "error_response":
            result["files"][symbol] = {"error": {"code": response.error_response.error_code,
                                                 "message": response.error_response.error_message}}
            continue
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in response.file_descriptor_response.file_descriptor_proto]

        def declares(f):
            names = [f"{f.package}.{x.name}" for x in list(f.service) + list(f.message_type) +
                     list(f.enum_type)]
            return symbol in names
        declaring = next((f for f in files if declares(f)), None)
        if declaring is None:
            result["files"][symbol] = {"error": {"code": -1,
                                                 "message": "no file sent declares the symbol"}}
            continue
        result["files"][symbol] = {
            "file": declaring.name,
            "package": declaring.package,
            "services": {f"{declaring.package}.{svc.name}": [m.name for m in svc.method]
                         for svc in declaring.service},
            "messages": [f"{declaring.package}.{m.name}" for m in declaring.message_type],
            "files_sent": len(files)}
    return result


def metadata_pair(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got '{text}'")
    return key.lower(), value


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=float, default=10.0, help="call deadline in seconds")
    common.add_argument("--metadata", type=metadata_pair, nargs="+", action="extend",
                        default=[], metavar="KEY=VALUE", help="request metadata")
    common.add_argument("--max-message-mib", type=int, default=256,
                        help="client send/receive message limit (-1: unlimited)")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", required=True)
    choice = model.add_mutually_exclusive_group()
    choice.add_argument("--version", type=int)
    choice.add_argument("--label")
    model.add_argument("--signature", help="signature_name (default: none sent)")

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the gRPC server")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", parents=[common, model])
    predict.add_argument("--values", required=True, help="comma-separated floats for input x")
    predict.add_argument("--shape", help="comma-separated dims (default: [number of values])")
    predict.add_argument("--tensor-content", action="store_true",
                         help="send x as tensor_content bytes instead of float_val")
    predict.set_defaults(run=cmd_predict)
    large = commands.add_parser("predict-large", parents=[common])
    large.add_argument("--mib", type=int, required=True)
    large.add_argument("--model", default="half_plus_two")
    large.set_defaults(run=cmd_predict_large)
    commands.add_parser("status", parents=[common, model]).set_defaults(run=cmd_status)
    commands.add_parser("metadata", parents=[common, model]).set_defaults(run=cmd_metadata)
    health = commands.add_parser("health", parents=[common])
    health.add_argument("--service", default="", help='service to ask about ("": the server)')
    health.set_defaults(run=cmd_health)
    reflect = commands.add_parser("reflect", parents=[common])
    reflect.add_argument("--symbol", nargs="+", action="extend", default=[],
                         help="fully qualified names whose declaring files to fetch")
    reflect.set_defaults(run=cmd_reflect)
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    with make_channel(args.target, args.max_message_mib) as channel:
        args.channel = channel
        try:
            result = args.run(args)
        except grpc.RpcError as e:
            # A failed call is a grpc.Call too: code, details and both metadata sets.
            result = {"error": {"code": e.code().name,
                                "details": e.details(),
                                "initial_metadata": metadata_dict(e.initial_metadata()),
                                "trailing_metadata": metadata_dict(e.trailing_metadata())}}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return EXIT_RPC_ERROR if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
