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
/* Points readline at `input` and `output` (stdin/stdout, or a terminal's
   descriptors): other descriptors get their own FILE on a dup, so closing
   them later leaves the caller's descriptor open. */
static inline int carteira_rl_use_descriptors(int input, int output) {
    FILE *in = input == STDIN_FILENO ? stdin : fdopen(dup(input), "r");
    FILE *out = output == STDOUT_FILENO ? stdout : fdopen(dup(output), "w");
    if (in == NULL || out == NULL) {
        if (in != NULL && in != stdin) fclose(in);
        if (out != NULL && out != stdout) fclose(out);
        return -1;
    }
    rl_instream = in;
    rl_outstream = out;
    return 0;
}

/* Back to stdin/stdout, closing any FILE made by carteira_rl_use_descriptors. */
static inline void carteira_rl_release_descriptors(void) {
    if (rl_instream != NULL && rl_instream != stdin) fclose(rl_instream);
    if (rl_outstream != NULL && rl_outstream != stdout) fclose(rl_outstream);
    rl_instream = stdin;
    rl_outstream = stdout;
}

/* Readline writes through stdio: flush it before writing around it. */
static inline void carteira_rl_flush_output(void) {
    if (rl_outstream != NULL) fflush(rl_outstream);
}

/* SIGINT goes to a self-pipe instead of killing the process: the handler
   only write()s one byte (async-signal-safe); the readline thread reads the
   pipe from its poll loop and clears the line there. The state lives in
   function-local statics of the one Swift file that imports this header. */
static inline volatile sig_atomic_t *carteira_sigint_pipe_fd(void) {
    static volatile sig_atomic_t fd = -1;
    return &fd;
}

/* The previous handler and flags, put back on close (its mask is not kept). */
typedef void (*carteira_signal_handler_t)(int);
static inline carteira_signal_handler_t *carteira_previous_sigint_handler(void) {
    static carteira_signal_handler_t handler = SIG_DFL;
    return &handler;
}
static inline int *carteira_previous_sigint_flags(void) {
    static int flags = 0;
    return &flags;
}

static inline void carteira_sigint_handler(int signal_number) {
    (void)signal_number;
    int saved_errno = errno;
    int fd = (int)*carteira_sigint_pipe_fd();
    if (fd >= 0) {
        char byte = 'i';
        ssize_t ignored = write(fd, &byte, 1);
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
    struct sigaction previous;
    memset(&previous, 0, sizeof previous);
    *carteira_sigint_pipe_fd() = fd;
    int result = sigaction(SIGINT, &action, &previous);
    if (result == 0) {
        *carteira_previous_sigint_handler() = previous.sa_handler;
        *carteira_previous_sigint_flags() = previous.sa_flags;
    }
    return result;
}

/* Puts back the SIGINT disposition found by carteira_install_sigint_pipe. */
static inline void carteira_restore_sigint(void) {
    struct sigaction previous;
    memset(&previous, 0, sizeof previous);
    previous.sa_handler = *carteira_previous_sigint_handler();
    previous.sa_flags = *carteira_previous_sigint_flags();
    sigemptyset(&previous.sa_mask);
    sigaction(SIGINT, &previous, NULL);
    *carteira_sigint_pipe_fd() = -1;
}

#endif
