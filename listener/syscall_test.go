package listener

import "syscall"

const syscallECONNRESET = syscall.ECONNRESET
