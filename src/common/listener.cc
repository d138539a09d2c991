#include "fusebox/common/listener.h"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <iterator>

namespace fusebox::io {

bool stop_completing_connections(int fd, std::string& error) {
  sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  sock_fprog program{static_cast<unsigned short>(std::size(drop_all)), drop_all};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) == 0) return true;
  error = std::strerror(errno);
  return false;
}

}  // namespace fusebox::io
