"""Which environment variables a tenant may set for an operator's catalog server.

A catalog entry of the operator's ``mcp.json`` lists the names tenants give values for
(``tenantEnv``). A name is accepted only when

1. it looks like a credential or an account setting (:data:`CREDENTIAL_NAME`): upper case,
   ending in ``_TOKEN``, ``_API_KEY``, ``_KEY``, ``_SECRET``, ``_PASSWORD``, ``_PASSPHRASE``,
   ``_USER``, ``_USERNAME``, ``_EMAIL``, ``_ACCOUNT``, ``_ORG``, ``_ORGANIZATION``,
   ``_PROJECT``, ``_WORKSPACE``, ``_TEAM``, ``_REGION``, ``_TENANT`` or ``_CLIENT``, each
   optionally followed by ``_ID`` (``GITHUB_TOKEN``, ``AWS_ACCESS_KEY_ID``, ``SLACK_TEAM_ID``),
   or the operator lists it in the entry's ``unsafeTenantEnv`` too (an explicit opt-in, for
   names such as ``JIRA_URL``: the server then goes wherever the tenant says, from inside the
   operator's network); and
2. it is not in a family that changes how programs load, run, trust TLS or reach the network
   (:data:`NEVER`), whatever the operator lists: ``LD_*``, ``*PATH``, interpreters'
   (``PYTHON*``, ``NODE_*``, ``JAVA_*``/``JDK_*``, ``PERL*``, ``RUBY*``, ``DOTNET_*``…),
   package managers' (``NPM_*``, ``UV_*``, ``PIP_*``, ``YARN_*``, ``BUN_*``, ``COREPACK_*``,
   ``GO*`` settings, ``CARGO_*``…), shells' (``ENV``, ``BASH_ENV``, ``PS4``, ``SHELLOPTS``…),
   TLS and proxies (``SSL_*``, ``OPENSSL_*``, ``SSLKEYLOGFILE``, ``*_PROXY``, ``*_CA_*``),
   the C library's (``GLIBC_TUNABLES``, ``HOSTALIASES``…), directories and files (``HOME``,
   ``TMPDIR``, ``XDG_*``, ``*_FILE``, ``*_DIR``, ``*_CONFIG``…), browsers' (``ELECTRON_*``,
   ``PUPPETEER_*``…), and what the ``mcp`` library passes itself (``USER``, ``TERM``…).

The rule is applied when the operator's file is read (names it refuses are logged and left
out of the entry), by the API when a tenant enables an entry, and by the worker before it
starts one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

CREDENTIAL_NAME = re.compile(
    r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(?:TOKEN|API_KEY|KEY|SECRET|PASSWORD|PASSPHRASE|USER|"
    r"USERNAME|EMAIL|ACCOUNT|ORG|ORGANIZATION|PROJECT|WORKSPACE|TEAM|REGION|TENANT|CLIENT)"
    r"(?:_ID)?$"
)
"""The shape of a name tenants may set without the operator's opt-in."""

NEVER = re.compile(
    r"^(?:"
    # the dynamic loader, search paths, files and directories
    r"LD_\w*|DYLD_\w*|\w*PATH|\w*_(?:FILE|DIR|HOME|CONFIG|CONF|CREDENTIALS|OPTIONS|OPTS|"
    r"FLAGS|PROXY|HOOKS?|PRELOAD|BUNDLE|CERTS?|CA_\w*)|"
    # shells, terminals, locale, and what the mcp library passes to every server
    r"HOME|SHELL|IFS|ENV|BASH_ENV|BASH_FUNC_\w*|SHELLOPTS|BASHOPTS|PS[0-4]|PROMPT_COMMAND|"
    r"TERM|TERMINFO\w*|USER|LOGNAME|LANG|LANGUAGE|LC_\w*|TZ|TZDIR|"
    # interpreters and runtimes
    r"PYTHON\w*|PERL\w*|RUBY\w*|GEM_\w*|NODE_\w*|DENO_\w*|JAVA_\w*|_JAVA_\w*|JDK_\w*|"
    r"CLASSPATH|DOTNET_\w*|CORECLR_\w*|COMPLUS_\w*|"
    # package managers and build tools
    r"NPM_\w*|YARN_\w*|BUN_\w*|COREPACK_\w*|UV_\w*|PIP_\w*|PIPX_\w*|POETRY_\w*|CONDA_\w*|"
    r"BUNDLE_\w*|MAVEN_\w*|GRADLE_\w*|NUGET_\w*|CARGO_\w*|RUSTUP_\w*|RUSTC\w*|RUSTFLAGS|"
    r"CGO_\w*|GO(?:FLAGS|PROXY|NOPROXY|PRIVATE|NOSUMDB|SUMDB|INSECURE|ROOT|ENV|TOOLCHAIN|"
    r"MODCACHE|CACHE|BIN|OS|ARCH|EXPERIMENT|DEBUG|GC|MAXPROCS|TELEMETRY|WORK|AMD64|ARM)|"
    # version control, keys, TLS, proxies, name resolution, the C library
    r"GIT_\w*|SSH_\w*|GNUPGHOME|GPG_\w*|SSL_\w*|OPENSSL_\w*|SSLKEYLOGFILE|CURL_\w*|WGETRC|"
    r"NO_PROXY|GLIBC_\w*|MALLOC_\w*|HOSTALIASES|RES_OPTIONS|LOCALDOMAIN|NIS_\w*|"
    # temporary and per-user directories, browsers, containers
    r"TMPDIR|TMP|TEMP|TEMPDIR|XDG_\w*|ELECTRON_\w*|PUPPETEER_\w*|PLAYWRIGHT_\w*|"
    r"CHROME_\w*|KUBECONFIG|DOCKER_\w*"
    r")$",
    re.IGNORECASE,
)
"""Families a tenant never sets, even when the operator lists them."""


def refusal(name: str, opted_in: Iterable[str] = ()) -> str | None:
    """Why a tenant may not set ``name`` (``opted_in``: the entry's ``unsafeTenantEnv``), or
    None when it may."""
    if NEVER.match(name):
        return "it changes how programs load, run or connect"
    if not CREDENTIAL_NAME.match(name) and name not in set(opted_in):
        return (
            "it does not look like a credential or an account setting "
            '(the operator may allow it with "unsafeTenantEnv")'
        )
    return None


def split(names: Iterable[str], opted_in: Iterable[str] = ()) -> tuple[set[str], dict[str, str]]:
    """``names`` split into those a tenant may set and those refused (name → why)."""
    opted = set(opted_in)
    accepted: set[str] = set()
    refused: dict[str, str] = {}
    for name in names:
        why = refusal(name, opted)
        if why is None:
            accepted.add(name)
        else:
            refused[name] = why
    return accepted, refused
