// sluice: flags → config → wire → run. Everything else lives in the gateway library.
#include <string>
#include <vector>

#include <cstdio>

#include "gateway/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opts = sluice::parse_cli(args);
  if (!opts) {
    std::fprintf(stderr, "sluice: %s\n", opts.error().c_str());
    return 2;
  }
  return sluice::run_cli(opts.value());
}
