#pragma once
// Closing a listening socket without resetting connections.
//
// The kernel completes TCP handshakes on a listening socket by itself and queues the
// connections for accept(); closing the socket resets every connection still queued, and a
// client has usually sent its request on it already. A listener that is going away first stops
// the kernel from completing new connections, then accepts what is queued, then closes.

#include <string>

namespace fusebox::io {

// Attaches a socket filter that drops every packet to the listening socket `fd`: new SYNs (and
// the last ACK of a handshake under way) go unanswered, so no new connection joins the accept
// queue; the ones already queued are not touched. A client whose SYN was dropped retries it and
// finds the port closed (refused), so it goes elsewhere. False, with `error` set, when the
// filter cannot be attached.
bool stop_completing_connections(int fd, std::string& error);

}  // namespace fusebox::io
