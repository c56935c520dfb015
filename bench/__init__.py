"""`make bench`: the mesh measured beside what the same machine does with the same contract.

Every figure runs twice back to back: against an "echo" (a bare grpc.aio
server of our own GenerationService stubs answering made-up generations, no
database, no auth; bench.echo_server), then against the mesh. See
docs/performance.md for what each figure means.
"""
