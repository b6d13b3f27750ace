# The x86_64 wheels are built like the Arm ones: against the target CPython's headers from Debian
# (recipes/wheels/python_headers.sh), not the running interpreter's, so one host builds every version.
# Naming the system makes CMake treat this as a cross build (the extension's Python is not run).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER gcc)
