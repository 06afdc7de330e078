// Linked only into the test executable `sluice-fault-hooks` (the real gateway/main.cpp plus this file): before
// main runs, installs engine fault hooks driven by files, so a test can hang or fail engine steps at a moment
// of its choosing without any hook existing in the product binary.
//   SLUICE_FAULT_HANG_FILE=PATH    while PATH exists, every engine step blocks before the backend runs
//   SLUICE_FAULT_DEVICE_FILE=PATH  while PATH exists, every engine step fails as a device fault
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "engine/core/fault_hooks.h"

namespace {

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

const bool installed = [] {
  sluice::EngineFaultHooks hooks;
  if (const char* hang = std::getenv("SLUICE_FAULT_HANG_FILE"); hang && *hang) {
    hooks.before_execute = [path = std::string(hang)](std::uint64_t) {
      while (file_exists(path)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    };
  }
  if (const char* dev = std::getenv("SLUICE_FAULT_DEVICE_FILE"); dev && *dev) {
    hooks.fail_step = [path = std::string(dev)](std::uint64_t) { return file_exists(path); };
  }
  sluice::set_engine_fault_hooks(std::move(hooks));
  return true;
}();

}  // namespace
