// SPDX-License-Identifier: Apache-2.0
// `vstore completion bash|zsh` and `vstore man`: shell completion and a man page, both made from
// the command tree CLI11 holds, so that neither can drift from `--help`.
//
// The completion scripts carry three lookup tables keyed by the command path ("" for vstore
// itself, "db start" for `vstore db start`): the subcommands, the options, and the options
// that take a value (with their choices where the option checks them against a set). The
// shell functions walk the words typed so far to find the path, skipping option values, and
// complete a subcommand, an option, an option's value, or else a file name.
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cli/cli_common.hpp"

namespace vstore::cli {
namespace {

// A command as the tables see it: its path and the App.
struct Command {
  std::string path;
  const CLI::App* app;
};

bool visible(const CLI::App* sub) { return !sub->get_name().empty() && !sub->get_group().empty(); }

// Depth first, `vstore` itself first: every visible command.
void collect(const CLI::App* app, const std::string& path, std::vector<Command>& out) {
  out.push_back({path, app});
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    if (visible(sub)) collect(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
  }
}

// The options of `app`, those of its option groups (nameless subcommands) included, without
// the hidden ones (group "": options for tests).
std::vector<const CLI::Option*> options_of(const CLI::App* app) {
  std::vector<const CLI::Option*> out;
  for (const CLI::Option* opt : app->get_options()) {
    if (!opt->get_group().empty()) out.push_back(opt);
  }
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) {
      for (const CLI::Option* opt : options_of(sub)) out.push_back(opt);
    }
  }
  return out;
}

bool is_named(const CLI::Option* opt) { return !opt->get_lnames().empty() || !opt->get_snames().empty(); }

std::vector<std::string> names_of(const CLI::Option* opt) {
  std::vector<std::string> out;
  for (const auto& s : opt->get_snames()) out.push_back("-" + s);
  for (const auto& l : opt->get_lnames()) out.push_back("--" + l);
  return out;
}

// The values an option or a positional accepts when CLI11 checks them against a set: its type
// name then reads e.g. "TEXT:{auto,on,off}".
std::vector<std::string> choices_of(const CLI::Option* opt) {
  const std::string type = opt->get_type_name();
  const std::size_t open = type.find(":{");
  const std::size_t close = type.find('}', open);
  if (open == std::string::npos || close == std::string::npos) return {};
  std::vector<std::string> out;
  std::string_view rest = std::string_view(type).substr(open + 2, close - open - 2);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    out.emplace_back(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// One `case` arm per command path for which `fn` gives a non-empty word list.
template <class Fn>
std::string case_table(const std::string& function, const std::vector<Command>& commands, Fn&& fn) {
  std::string out = fmt::format("{}() {{\n  case \"$1\" in\n", function);
  for (const auto& c : commands) {
    const std::string words = fn(c);
    if (!words.empty()) out += fmt::format("    \"{}\") echo \"{}\" ;;\n", c.path, words);
  }
  return out + "  esac\n}\n";
}

// The tables both shells share (their `case` syntax is the same).
std::string completion_tables(const CLI::App& app) {
  std::vector<Command> commands;
  collect(&app, "", commands);
  // Options of vstore itself are taken after any command too (the app falls through).
  std::vector<std::string> global;
  for (const CLI::Option* opt : options_of(&app)) {
    if (is_named(opt) && opt != app.get_help_ptr() && !opt->check_lname("version")) {
      for (const auto& n : names_of(opt)) global.push_back(n);
    }
  }
  std::string out = case_table("_vstore_subs", commands, [](const Command& c) {
    std::vector<std::string> names;
    for (const CLI::App* sub : c.app->get_subcommands([](const CLI::App*) { return true; })) {
      if (visible(sub)) names.push_back(sub->get_name());
    }
    return join(names);
  });
  out += case_table("_vstore_opts", commands, [&](const Command& c) {
    std::vector<std::string> names;
    for (const CLI::Option* opt : options_of(c.app)) {
      if (is_named(opt)) {
        for (const auto& n : names_of(opt)) names.push_back(n);
      }
    }
    if (c.app != &app) names.insert(names.end(), global.begin(), global.end());
    return join(names);
  });
  out += case_table("_vstore_valued", commands, [&](const Command& c) {
    std::vector<std::string> names;
    for (const CLI::Option* opt : options_of(c.app)) {
      if (is_named(opt) && opt->get_type_size() > 0) {
        for (const auto& n : names_of(opt)) names.push_back(n);
      }
    }
    if (c.app != &app) names.emplace_back("--env-file");
    return join(names);
  });
  // Choices: keyed by "path|option", and "path|" for the command's positional.
  out += "_vstore_choices() {\n  case \"$1|$2\" in\n";
  for (const auto& c : commands) {
    for (const CLI::Option* opt : options_of(c.app)) {
      const std::vector<std::string> choices = choices_of(opt);
      if (choices.empty()) continue;
      const std::vector<std::string> keys = is_named(opt) ? names_of(opt) : std::vector<std::string>{""};
      for (const auto& key : keys) out += fmt::format("    \"{}|{}\") echo \"{}\" ;;\n", c.path, key, join(choices));
    }
  }
  return out + "  esac\n}\n";
}

// The walk over the words typed before the cursor, the same in both shells but for how the
// words are indexed: sets `cmdpath` (never `path`: zsh ties that name to $PATH).
constexpr std::string_view k_walk = R"sh(  local cmdpath="" word skip=0 i
  for ((i = @FIRST@; i < @LAST@; i++)); do
    word=@WORD@
    if ((skip)); then skip=0; continue; fi
    case "$word" in
      -*=*) continue ;;
      -*) [[ " $(_vstore_valued "$cmdpath") " == *" $word "* ]] && skip=1; continue ;;
    esac
    [[ " $(_vstore_subs "$cmdpath") " == *" $word "* ]] && cmdpath="${cmdpath:+$cmdpath }$word"
  done
)sh";

std::string walk(std::string_view first, std::string_view last, std::string_view word) {
  std::string out(k_walk);
  auto replace = [&out](std::string_view from, std::string_view to) { out.replace(out.find(from), from.size(), to); };
  replace("@FIRST@", first);
  replace("@LAST@", last);
  replace("@WORD@", word);
  return out;
}

std::string bash_script(const CLI::App& app) {
  return "# bash completion for vstore, made by `vstore completion bash`\n"
         "# Load it with: source <(vstore completion bash)\n" +
         completion_tables(app) + "_vstore() {\n" + walk("1", "COMP_CWORD", "${COMP_WORDS[i]}") +
         R"sh(  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words_
  COMPREPLY=()
  if [[ " $(_vstore_valued "$cmdpath") " == *" $prev "* ]]; then
    words_=$(_vstore_choices "$cmdpath" "$prev")
    [[ -n $words_ ]] && COMPREPLY=($(compgen -W "$words_" -- "$cur"))
    return 0  # no choices: bash completes a file name (-o default)
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_vstore_opts "$cmdpath")" -- "$cur"))
    return 0
  fi
  words_=$(_vstore_subs "$cmdpath")
  [[ -z $words_ ]] && words_=$(_vstore_choices "$cmdpath" "")
  [[ -n $words_ ]] && COMPREPLY=($(compgen -W "$words_" -- "$cur"))
  return 0
}
complete -o default -F _vstore vstore
)sh";
}

std::string zsh_script(const CLI::App& app) {
  return "#compdef vstore\n"
         "# zsh completion for vstore, made by `vstore completion zsh`\n"
         "# Load it with: source <(vstore completion zsh), or save it as _vstore in a directory of $fpath\n" +
         completion_tables(app) + "_vstore() {\n" + walk("2", "CURRENT", "${words[i]}") +
         R"sh(  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} words_
  if [[ " $(_vstore_valued "$cmdpath") " == *" $prev "* ]]; then
    words_=$(_vstore_choices "$cmdpath" "$prev")
    if [[ -n $words_ ]]; then compadd -- ${=words_}; else _files; fi
    return
  fi
  if [[ $cur == -* ]]; then
    compadd -- ${=$(_vstore_opts "$cmdpath")}
    return
  fi
  words_=$(_vstore_subs "$cmdpath")
  [[ -z $words_ ]] && words_=$(_vstore_choices "$cmdpath" "")
  if [[ -n $words_ ]]; then compadd -- ${=words_}; else _files; fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _vstore "$@"
else
  compdef _vstore vstore
fi
)sh";
}

// ---- the man page ------------------------------------------------------------------------------

// Text for roff: backslashes escaped, a line never starting with a control character, each
// run of white space one space (CLI11 descriptions may hold line breaks).
std::string roff(std::string_view text) {
  std::string out;
  bool space = false;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\'')) out.insert(0, "\\&");
  return out;
}

std::string option_entry(const CLI::Option* opt) {
  std::string head;
  if (is_named(opt)) {
    for (const auto& n : names_of(opt)) head += (head.empty() ? "" : ", ") + fmt::format("\\fB{}\\fR", roff(n));
    if (opt->get_type_size() > 0) head += fmt::format(" \\fI{}\\fR", roff(opt->get_type_name()));
  } else {
    head = fmt::format("\\fI{}\\fR", roff(opt->get_name()));
  }
  std::string text = roff(opt->get_description());
  if (const std::string def = opt->get_default_str(); !def.empty() && opt->get_type_size() > 0) {
    text += fmt::format(" (default: {})", roff(def));
  }
  return fmt::format(".TP\n{}\n{}\n", head, text.empty() ? "\\&" : text);
}

std::string man_page(const CLI::App& app) {
  std::vector<Command> commands;
  collect(&app, "", commands);
  std::string out = fmt::format(".\\\" The manual page of vstore, made by `vstore man` from its --help.\n"
                                ".TH VSTORE 1 \"\" \"vstore {}\" \"User Commands\"\n"
                                ".SH NAME\nvstore \\- an article vector store on PostgreSQL + pgvector\n"
                                ".SH SYNOPSIS\n.B vstore\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fISUBCOMMAND\\fR] "
                                "[\\fIARGUMENTS\\fR]\n"
                                ".SH DESCRIPTION\n{}\n.PP\n"
                                "\\fBvstore help\\fR \\fICOMMAND\\fR, or \\fB\\-\\-help\\fR after any command, "
                                "prints the same text as this page for one command.\n"
                                ".SH OPTIONS\nThese are taken before or after the command.\n",
                                VSTORE_VERSION, roff(app.get_description()));
  for (const CLI::Option* opt : options_of(&app)) out += option_entry(opt);
  out += ".SH COMMANDS\n";
  for (const auto& c : commands) {
    if (c.app == &app) continue;
    std::string usage = "vstore " + c.path;
    bool has_subs = false;
    for (const CLI::App* sub : c.app->get_subcommands([](const CLI::App*) { return true; })) has_subs |= visible(sub);
    if (has_subs) usage += " SUBCOMMAND";
    bool has_options = false;
    for (const CLI::Option* opt : options_of(c.app)) {
      if (is_named(opt)) {
        has_options = true;
      } else {
        usage += " " + opt->get_name();
      }
    }
    if (has_options) usage += " [OPTIONS]";
    out += fmt::format(".SS \"{}\"\n{}\n", roff(usage), roff(c.app->get_description()));
    for (const CLI::Option* opt : options_of(c.app)) {
      if (opt != c.app->get_help_ptr()) out += option_entry(opt);
    }
  }
  out += ".SH EXIT STATUS\n"
         "0 on success; 1 on a failure, with a one\\-line reason on standard error starting "
         "\\fBvstore:\\fR; 2 on a usage error (an unknown command, a missing argument, an option out of "
         "its range).\n"
         ".SH ENVIRONMENT\n"
         "Settings come from the environment over the file \\fI.env\\fR of the current directory (or "
         "\\fB\\-\\-env\\-file\\fR). \\fBvstore config show\\fR prints every setting with its source.\n"
         ".SH SEE ALSO\n"
         "\\fBvstore completion bash\\fR, \\fBvstore completion zsh\\fR; docs/cli.md in the source tree.\n";
  return out;
}

}  // namespace

void add_completion_commands(CLI::App& app, Action& action) {
  static std::string shell;
  auto* completion = app.add_subcommand("completion", "print the shell completion script for SHELL: "
                                                      "source <(vstore completion bash) in ~/.bashrc, "
                                                      "or source <(vstore completion zsh) in ~/.zshrc");
  completion->add_option("SHELL", shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([&app, &action] {
    action = [&app] {
      const std::string script = shell == "bash" ? bash_script(app) : zsh_script(app);
      std::fputs(script.c_str(), stdout);
      return k_exit_ok;
    };
  });
  auto* man = app.add_subcommand("man", "print the manual page (roff) made from --help: "
                                        "vstore man > ~/.local/share/man/man1/vstore.1, or vstore man | man -l -");
  man->callback([&app, &action] {
    action = [&app] {
      std::fputs(man_page(app).c_str(), stdout);
      return k_exit_ok;
    };
  });
}

}  // namespace vstore::cli
