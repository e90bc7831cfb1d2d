package memcached

// The binary protocol's vocabulary, shared by the client codec and the
// embedded server (memcached/server). Values are the wire bytes from
// memcached's protocol_binary.h.

// Magic bytes opening every binary packet.
const (
	MagicRequest  byte = 0x80
	MagicResponse byte = 0x81
)

// HeaderLen is the fixed size of a binary packet header.
const HeaderLen = 24

// Opcode is a binary protocol command.
type Opcode uint8

// Binary protocol opcodes. Q variants are quiet: the server answers them only
// on failure (and GetQ/GetKQ/GATQ/GATKQ only on a hit).
const (
	OpGet        Opcode = 0x00
	OpSet        Opcode = 0x01
	OpAdd        Opcode = 0x02
	OpReplace    Opcode = 0x03
	OpDelete     Opcode = 0x04
	OpIncrement  Opcode = 0x05
	OpDecrement  Opcode = 0x06
	OpQuit       Opcode = 0x07
	OpFlush      Opcode = 0x08
	OpGetQ       Opcode = 0x09
	OpNoop       Opcode = 0x0a
	OpVersion    Opcode = 0x0b
	OpGetK       Opcode = 0x0c
	OpGetKQ      Opcode = 0x0d
	OpAppend     Opcode = 0x0e
	OpPrepend    Opcode = 0x0f
	OpStat       Opcode = 0x10
	OpSetQ       Opcode = 0x11
	OpAddQ       Opcode = 0x12
	OpReplaceQ   Opcode = 0x13
	OpDeleteQ    Opcode = 0x14
	OpIncrementQ Opcode = 0x15
	OpDecrementQ Opcode = 0x16
	OpQuitQ      Opcode = 0x17
	OpFlushQ     Opcode = 0x18
	OpAppendQ    Opcode = 0x19
	OpPrependQ   Opcode = 0x1a
	OpVerbosity  Opcode = 0x1b
	OpTouch      Opcode = 0x1c
	OpGAT        Opcode = 0x1d
	OpGATQ       Opcode = 0x1e
	OpSASLList   Opcode = 0x20
	OpSASLAuth   Opcode = 0x21
	OpSASLStep   Opcode = 0x22
	OpGATK       Opcode = 0x23
	OpGATKQ      Opcode = 0x24
)

var opcodeNames = [...]string{
	OpGet: "Get", OpSet: "Set", OpAdd: "Add", OpReplace: "Replace",
	OpDelete: "Delete", OpIncrement: "Increment", OpDecrement: "Decrement",
	OpQuit: "Quit", OpFlush: "Flush", OpGetQ: "GetQ", OpNoop: "Noop",
	OpVersion: "Version", OpGetK: "GetK", OpGetKQ: "GetKQ", OpAppend: "Append",
	OpPrepend: "Prepend", OpStat: "Stat", OpSetQ: "SetQ", OpAddQ: "AddQ",
	OpReplaceQ: "ReplaceQ", OpDeleteQ: "DeleteQ", OpIncrementQ: "IncrementQ",
	OpDecrementQ: "DecrementQ", OpQuitQ: "QuitQ", OpFlushQ: "FlushQ",
	OpAppendQ: "AppendQ", OpPrependQ: "PrependQ", OpVerbosity: "Verbosity",
	OpTouch: "Touch", OpGAT: "GAT", OpGATQ: "GATQ", OpSASLList: "SASL_List",
	OpSASLAuth: "SASL_Auth", OpSASLStep: "SASL_Step", OpGATK: "GATK", OpGATKQ: "GATKQ",
}

// String returns the opcode's name as resty.bmemcached's consts spell it.
func (o Opcode) String() string {
	if int(o) < len(opcodeNames) && opcodeNames[o] != "" {
		return opcodeNames[o]
	}
	return "Unknown"
}

// Opcodes lists every opcode the client speaks, in wire order.
func Opcodes() []Opcode {
	ops := make([]Opcode, 0, len(opcodeNames))
	for i, n := range opcodeNames {
		if n != "" {
			ops = append(ops, Opcode(i))
		}
	}
	return ops
}

// Quiet reports whether the server stays silent on success for o.
func (o Opcode) Quiet() bool {
	switch o {
	case OpGetQ, OpGetKQ, OpSetQ, OpAddQ, OpReplaceQ, OpDeleteQ, OpIncrementQ,
		OpDecrementQ, OpQuitQ, OpFlushQ, OpAppendQ, OpPrependQ, OpGATQ, OpGATKQ:
		return true
	}
	return false
}

// Status is a binary response status.
type Status uint16

// Binary response statuses.
const (
	StatusNoError          Status = 0x00
	StatusKeyNotFound      Status = 0x01
	StatusKeyExists        Status = 0x02
	StatusValueTooLarge    Status = 0x03
	StatusInvalidArgs      Status = 0x04
	StatusItemNotStored    Status = 0x05
	StatusNonNumeric       Status = 0x06
	StatusVBucketElsewhere Status = 0x07
	// The SASL statuses memcached 1.6 (and Couchbase) send. The binary
	// protocol document lists 0x08/0x09; see StatusAuthErrorSpec.
	StatusAuthError        Status = 0x20
	StatusAuthContinue     Status = 0x21
	StatusAuthErrorSpec    Status = 0x08
	StatusAuthContinueSpec Status = 0x09
	StatusUnknownCommand   Status = 0x81
	StatusOutOfMemory      Status = 0x82
	StatusNotSupported     Status = 0x83
	StatusInternalError    Status = 0x84
	StatusBusy             Status = 0x85
	StatusTemporaryFailure Status = 0x86
)

// String returns the status text the Lua API shows in header.status.
func (s Status) String() string {
	switch s {
	case StatusNoError:
		return "No error"
	case StatusKeyNotFound:
		return "Key not found"
	case StatusKeyExists:
		return "Key exists"
	case StatusValueTooLarge:
		return "Value too large"
	case StatusInvalidArgs:
		return "Invalid arguments"
	case StatusItemNotStored:
		return "Item not stored"
	case StatusNonNumeric:
		return "Incr/Decr on non-numeric value"
	case StatusVBucketElsewhere:
		return "Vbucket belongs to another server"
	case StatusAuthError, StatusAuthErrorSpec:
		return "Authentication error"
	case StatusAuthContinue, StatusAuthContinueSpec:
		return "Authentication continue"
	case StatusUnknownCommand:
		return "Unknown command"
	case StatusOutOfMemory:
		return "Out of memory"
	case StatusNotSupported:
		return "Not supported"
	case StatusInternalError:
		return "Internal error"
	case StatusBusy:
		return "Busy"
	case StatusTemporaryFailure:
		return "Temporary failure"
	}
	return "Unknown status"
}

// Statuses lists every status with a known text, in wire order.
func Statuses() []Status {
	return []Status{StatusNoError, StatusKeyNotFound, StatusKeyExists,
		StatusValueTooLarge, StatusInvalidArgs, StatusItemNotStored,
		StatusNonNumeric, StatusVBucketElsewhere, StatusAuthErrorSpec,
		StatusAuthContinueSpec, StatusAuthError, StatusAuthContinue, StatusUnknownCommand, StatusOutOfMemory,
		StatusNotSupported, StatusInternalError, StatusBusy, StatusTemporaryFailure}
}

// Limits shared with memcached 1.6.
const (
	MaxKeyLen       = 250
	DefaultItemSize = 1 << 20 // memcached's default -I
	// RelativeExpiryLimit: an exptime above this many seconds (30 days) is an
	// absolute unix time, as memcached defines it.
	RelativeExpiryLimit = 60 * 60 * 24 * 30
)
