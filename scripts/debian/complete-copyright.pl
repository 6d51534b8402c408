#!/usr/bin/perl
# Completes a machine-readable debian/copyright (DEP-5) for a tree with
# vendored crates:
#
#   complete-copyright.pl TREE TEMPLATE > COPYRIGHT
#
# Prints TEMPLATE (the header and the Files paragraphs for sunrise's own
# files), then one Files paragraph per crate in TREE/vendor/ (copyright
# holders and licence from `cargo metadata`, i.e. each crate's Cargo.toml),
# then one standalone License paragraph for every licence named in any Files
# paragraph, with the text from scripts/debian/licenses/. A licence with no
# text there, or an SPDX expression this script cannot translate, is an
# error: the file is complete or it is not written.
use strict;
use warnings;
use File::Basename qw(dirname);
use JSON::PP;

binmode STDOUT, ':encoding(UTF-8)';

my ($tree, $template) = @ARGV;
die "usage: $0 TREE TEMPLATE\n" unless defined $template;
my $licdir = dirname(__FILE__) . '/licenses';

# SPDX identifiers (as crates name them) -> DEP-5 short names.
my %short = (
    'MIT'                => 'Expat',
    'Apache-2.0'         => 'Apache-2.0',
    'BSD-2-Clause'       => 'BSD-2-clause',
    'ISC'                => 'ISC',
    'Zlib'               => 'Zlib',
    'Unlicense'          => 'Unlicense',
    'MPL-2.0'            => 'MPL-2.0',
    'LGPL-2.1-or-later'  => 'LGPL-2.1+',
    'Unicode-3.0'        => 'Unicode-3.0',
    'CC-BY-4.0'          => 'CC-BY-4.0',
);
my %exception = ('LLVM-exception' => 'LLVM');

# One licence term: "ID" or "ID WITH EXCEPTION".
sub term {
    my ($t) = @_;
    $t =~ s/^\s+|\s+$//g;
    if ($t =~ /^(\S+)\s+WITH\s+(\S+)$/) {
        my ($id, $exc) = ($1, $2);
        die "unknown licence '$id'\n" unless $short{$id};
        die "unknown exception '$exc'\n" unless $exception{$exc};
        return "$short{$id} with $exception{$exc} exception";
    }
    die "unknown licence '$t'\n" unless $short{$t};
    return $short{$t};
}

# A flat expression: terms joined by one kind of operator.
sub flat {
    my ($e) = @_;
    die "cannot translate '$e'\n" if $e =~ /[()]/;
    my @ops = $e =~ /\s(OR|AND)\s/g;
    my %kinds = map { $_ => 1 } @ops;
    die "mixed AND/OR without parentheses in '$e'\n" if keys %kinds > 1;
    my $op = @ops ? lc $ops[0] : 'or';
    return join(" $op ", map { term($_) } split /\s+(?:OR|AND)\s+/, $e);
}

# SPDX expression -> DEP-5 License field. DEP-5 has no parentheses; its
# comma separates a lower-precedence "and": "(A OR B) AND C" is "A or B,
# and C".
sub dep5 {
    my ($e) = @_;
    $e =~ s{\s*/\s*}{ OR }g;    # the old "MIT/Apache-2.0" form
    $e =~ s/^\s+|\s+$//g;
    if ($e =~ /^\(([^()]*)\)\s+AND\s+([^()]*)$/) {
        return flat($1) . ', and ' . flat($2);
    }
    return flat($e);
}

# Licence names used in a License field (exceptions kept as one name).
sub names {
    my ($field) = @_;
    return grep { length } map { s/^\s+|\s+$//gr } split /,|\s+(?:or|and)\s+/, $field;
}

sub text_of {
    my ($name) = @_;
    my @parts = ($name);
    if ($name =~ /^(\S+) with (\S+) exception$/) {
        @parts = ($1, "$2-exception");
    }
    my @texts;
    for my $p (@parts) {
        my $f = "$licdir/$p.txt";
        open my $fh, '<:encoding(UTF-8)', $f or die "no licence text for '$name' ($f)\n";
        local $/;
        push @texts, scalar <$fh>;
    }
    my $body = join "\n", @texts;
    $body =~ s/\s+$//;
    # DEP-5 continuation lines: one leading space, "." for an empty line.
    return join "\n", map { length($_) ? " $_" : ' .' } split /\n/, $body;
}

open my $tf, '<:encoding(UTF-8)', $template or die "$template: $!\n";
my $out = do { local $/; <$tf> };
close $tf;
$out =~ s/\s+$/\n/;

my %used;
for my $para (split /\n\s*\n/, $out) {
    next unless $para =~ /^Files:/m;
    my ($lic) = $para =~ /^License:\s*(.+)$/m or die "Files paragraph without License:\n$para\n";
    $used{$_} = 1 for names($lic);
}
# Only standalone paragraphs (no Files field) define a licence.
my %defined;
for my $para (split /\n\s*\n/, $out) {
    next if $para =~ /^Files:/m;
    $defined{$1} = 1 if $para =~ /^License:\s*(.+)$/m;
}

local $ENV{CARGO_TERM_COLOR} = 'never';
my $json = `cd '$tree' && cargo metadata --format-version 1 --offline --locked --config 'source.crates-io.replace-with="vendored-sources"' --config 'source.vendored-sources.directory="vendor"'`;
die "cargo metadata failed\n" if $? != 0;
my $meta = decode_json($json);

my %seen_dir;
my @paras;
for my $p (sort { $a->{name} cmp $b->{name} or $a->{version} cmp $b->{version} } @{ $meta->{packages} }) {
    next unless defined $p->{source};
    my $dir = dirname($p->{manifest_path});
    $dir =~ s{^\Q$tree\E/?}{} or die "$p->{name}: not under $tree: $dir\n";
    $dir =~ m{^vendor/[^/]+$} or die "$p->{name}: not vendored: $dir\n";
    $seen_dir{$dir} = 1;
    my $spdx = $p->{license} // die "$p->{name} $p->{version}: no SPDX licence in Cargo.toml\n";
    my $lic = eval { dep5($spdx) } // die "$p->{name} $p->{version}: $@";
    $used{$_} = 1 for names($lic);
    my @authors = @{ $p->{authors} // [] };
    my $holders = @authors
        ? join("\n           ", @authors)
        : "the $p->{name} authors";
    my $para = "Files: $dir/*\nCopyright: $holders\nLicense: $lic\n";
    $para .= "Comment: crate $p->{name} $p->{version}, vendored from crates.io";
    $para .= "; $p->{repository}" if $p->{repository};
    $para .= "\n";
    push @paras, $para;
}
# Every vendored directory is described.
opendir my $vd, "$tree/vendor" or die "$tree/vendor: $!\n";
for my $d (sort grep { !/^\./ } readdir $vd) {
    die "vendor/$d is not a crate cargo metadata knows\n" unless $seen_dir{"vendor/$d"};
}

print $out, "\n", join("\n", @paras);
for my $name (sort keys %used) {
    next if $defined{$name};
    print "\nLicense: $name\n", text_of($name), "\n";
}
