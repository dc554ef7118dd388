package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/config"
)

// stdin is what hash-password reads; tests replace it.
var stdin io.Reader = os.Stdin

// defaultHashCost is the bcrypt cost of `chatd hash-password`: about a
// quarter of a second per check on a current core.
const defaultHashCost = 12

// hashPassword reads a password from the first line of in and prints its
// bcrypt hash, the value of admin.password_hash. The password is never an
// argument, so that it stays out of the shell history and the process list.
func hashPassword(args []string, in io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cost := fs.Int("cost", defaultHashCost, "bcrypt cost")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return fmt.Errorf("%w: usage: chatd hash-password [-cost N] < password-file (the password is read from standard input, never an argument)", errUsage)
	}
	if *cost < config.MinAdminBcryptCost || *cost > bcrypt.MaxCost {
		return fmt.Errorf("%w: -cost must be from %d to %d, not %d", errUsage, config.MinAdminBcryptCost, bcrypt.MaxCost, *cost)
	}
	line, err := bufio.NewReader(io.LimitReader(in, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case pw == "":
		return fmt.Errorf("%w: no password on standard input; e.g. printf '%%s\\n' \"$PASSWORD\" | chatd hash-password", errUsage)
	case len(pw) < 12:
		return fmt.Errorf("%w: the password is %d characters; use at least 12", errUsage, len(pw))
	case len(pw) > 72:
		return fmt.Errorf("%w: the password is %d bytes; bcrypt reads at most 72", errUsage, len(pw))
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(h))
	return nil
}
