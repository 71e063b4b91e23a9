"""A real grpc.health.v1 client (grpcio + grpcio-health-checking) against the agent.

Usage: health_check.py HOST:PORT UNIT

Prints one line per observation; the Rust test publishes a CRITICAL snapshot once it has read
"watching SERVING":
  check <service> <STATUS>     for the overall service ("") and the unit, at start
  watching SERVING             once the Watch of "" has delivered its first status
  watch NOT_SERVING            when the Watch sees the change
  check <service> <STATUS>     again for both, after the change
Exit code 2 with a message when the Python packages are missing.
"""

import sys

try:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
except ImportError as e:
    print(f"missing python package: {e}; install with: python3 -m pip install grpcio grpcio-health-checking",
          file=sys.stderr)
    sys.exit(2)

TIMEOUT = 20


def name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def check(stub, service):
    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    print(f"check {service or '-'} {name(response.status)}", flush=True)


def main():
    target, unit = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        check(stub, "")
        check(stub, unit)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        first = next(watch)
        print(f"watching {name(first.status)}", flush=True)
        for response in watch:
            if response.status != first.status:
                print(f"watch {name(response.status)}", flush=True)
                break
        watch.cancel()
        check(stub, "")
        check(stub, unit)


if __name__ == "__main__":
    main()
