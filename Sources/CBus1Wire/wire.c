/* Compiles the layout header once so its _Static_asserts are checked on every build. */
#include "bus1_wire.h"
