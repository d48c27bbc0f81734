#include "engine/commands.hpp"

int main(int argc, char** argv) { return stowage::engine::main_entry(argc, argv); }
