#ifndef CARTEIRA_READLINE_SHIM_H
#define CARTEIRA_READLINE_SHIM_H
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <readline/readline.h>
#include <readline/history.h>

/* Swift 6 refuses to touch C mutable globals, so readline's are read and set
   through these functions. Only LineEditor.swift imports this module. */

static inline void carteira_rl_set_attempted_completion_function(rl_completion_func_t *function) {
    rl_attempted_completion_function = function;
}
static inline void carteira_rl_set_attempted_completion_over(int value) { rl_attempted_completion_over = value; }
static inline void carteira_rl_set_completion_append_character(int value) { rl_completion_append_character = value; }
static inline void carteira_rl_set_catch_signals(int value) { rl_catch_signals = value; }
static inline void carteira_rl_set_catch_sigwinch(int value) { rl_catch_sigwinch = value; }
static inline void carteira_rl_set_instream(FILE *stream) { rl_instream = stream; }
static inline void carteira_rl_set_outstream(FILE *stream) { rl_outstream = stream; }
static inline void carteira_rl_set_readline_name(const char *name) { rl_readline_name = name; }
static inline const char *carteira_rl_line_buffer(void) { return rl_line_buffer; }
static inline int carteira_rl_point(void) { return rl_point; }
static inline void carteira_rl_set_point(int point) { rl_point = point; }
static inline int carteira_rl_end(void) { return rl_end; }
/* The newest history entry's text, or NULL when the history is empty. */
static inline const char *carteira_history_last_line(void) {
    HIST_ENTRY *entry = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    return entry ? entry->line : NULL;
}
static inline FILE *carteira_stdin(void) { return stdin; }
static inline FILE *carteira_stdout(void) { return stdout; }

/* SIGINT goes to a self-pipe instead of killing the process: the handler
   only write()s one byte (async-signal-safe); the readline thread reads the
   pipe from its poll loop and clears the line there. */
static int carteira_sigint_pipe_fd = -1;
static struct sigaction carteira_previous_sigint;

static void carteira_sigint_handler(int signal_number) {
    (void)signal_number;
    int saved_errno = errno;
    if (carteira_sigint_pipe_fd >= 0) {
        char byte = 'i';
        ssize_t ignored = write(carteira_sigint_pipe_fd, &byte, 1);
        (void)ignored;
    }
    errno = saved_errno;
}

/* Routes SIGINT to `fd` (the write end of a non-blocking pipe). */
static inline int carteira_install_sigint_pipe(int fd) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = carteira_sigint_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    carteira_sigint_pipe_fd = fd;
    return sigaction(SIGINT, &action, &carteira_previous_sigint);
}

/* Puts back the SIGINT disposition found by carteira_install_sigint_pipe. */
static inline void carteira_restore_sigint(void) {
    sigaction(SIGINT, &carteira_previous_sigint, NULL);
    carteira_sigint_pipe_fd = -1;
}

#endif
