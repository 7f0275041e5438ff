// Package backend is the lab's backend server: the endpoints behind the appliance's Services.
//
// One Server answers, under one name (e.g. "b1"):
//   - HTTP: GET / → "backend b1 198.18.1.21:8080\n" (its name and the address it was reached on),
//     GET /whoami → JSON {"backend","local","remote"} with the client address it saw (after any NAT),
//     /stream → a full-duplex echo of the request body for long-lived connections, GET /healthz → "ok".
//   - TCP echo: every byte back, for long-lived flows.
//   - UDP echo: each datagram answered with "b1 " + payload.
//
// It runs in-process on sockets opened inside a lab namespace (lab.(*Lab).StartBackends, via NS.Listen) or
// as `bench backend --name b1 --http :8080 --udp :9000 --tcp-echo :7000` inside a namespace.
//
// Invariants: everything is bounded. Serve returns once its context is done, after closing its listeners and
// every open connection; connections idle for Config.IdleTimeout are closed; at most Config.MaxConns HTTP and
// echo connections are open at once (more are closed and counted in Stats.Rejected). Nothing is logged per
// request.
//
// # Concurrency
//
// Serve is called once and blocks; Stats may be called from any goroutine.
package backend
