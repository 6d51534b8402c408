#!/usr/bin/perl
# Removes prebuilt binaries from a `cargo vendor` directory and keeps cargo's
# checksums valid:
#
#   prune-vendor.pl VENDOR_DIR
#
# Deleted: *.a, *.dll and *.lib files (Windows import libraries in the
# windows_* crates, test DLLs in libloading); debian/copyright's
# Files-Excluded names the same patterns. Each deleted file is dropped from
# its crate's .cargo-checksum.json ("files" only; the "package" checksum is
# of the .crate file and stays). Cargo verifies only the files listed, so
# the crate still builds --frozen. Any other prebuilt object left in vendor/
# (ELF or Mach-O files, *.exe, *.so, *.dylib, *.o, *.obj) is an error: it
# would need a decision, not silence.
use strict;
use warnings;
use File::Find;
use JSON::PP;

my ($vendor) = @ARGV;
die "usage: $0 VENDOR_DIR\n" unless defined $vendor && -d $vendor;

my (%drop, @suspect);
find({ no_chdir => 1, wanted => sub {
    return unless -f $_;
    my $rel = substr($_, length($vendor) + 1);
    my ($crate, $path) = split m{/}, $rel, 2;
    return unless defined $path;
    if ($path =~ /\.(?:a|dll|lib)$/) {
        push @{ $drop{$crate} }, $path;
        return;
    }
    if ($path =~ /\.(?:exe|so|so\.\d.*|dylib|o|obj)$/) {
        push @suspect, $rel;
        return;
    }
    open my $fh, '<:raw', $_ or die "$_: $!\n";
    my $magic = '';
    read $fh, $magic, 4;
    close $fh;
    push @suspect, $rel
        if $magic eq "\x7fELF" || $magic =~ /^\xcf\xfa\xed\xfe|^\xfe\xed\xfa\xcf|^\xca\xfe\xba\xbe/;
} }, $vendor);

die "prebuilt objects left in $vendor (decide, then extend this script):\n  "
    . join("\n  ", sort @suspect) . "\n" if @suspect;

my $json = JSON::PP->new->canonical;
my $n = 0;
for my $crate (sort keys %drop) {
    my $sumfile = "$vendor/$crate/.cargo-checksum.json";
    open my $in, '<', $sumfile or die "$sumfile: $!\n";
    my $sums = decode_json(do { local $/; <$in> });
    close $in;
    for my $path (sort @{ $drop{$crate} }) {
        exists $sums->{files}{$path} or die "$crate/$path is not in $sumfile\n";
        delete $sums->{files}{$path};
        unlink "$vendor/$crate/$path" or die "$crate/$path: $!\n";
        print "removed vendor/$crate/$path\n";
        $n++;
    }
    open my $out, '>', $sumfile or die "$sumfile: $!\n";
    print $out $json->encode($sums);
    close $out;
}
print "removed $n prebuilt file(s) from vendor/\n";
