# Used by tentacle.iss around an upgrade. -Action Stop stops the running services whose program
# is <Folder>\tentacle.exe and writes their names to -List; -Action Start starts the services
# named in -List. Instances are not touched: a service's configuration stays as it is.
param(
    [Parameter(Mandatory)] [ValidateSet('Stop', 'Start')] [string] $Action,
    [Parameter(Mandatory)] [string] $List,
    [string] $Folder
)
$ErrorActionPreference = 'Stop'
if ($Action -eq 'Stop') {
    $program = Join-Path $Folder 'tentacle.exe'
    $running = @(Get-CimInstance Win32_Service | Where-Object {
            $_.State -eq 'Running' -and $_.PathName -and
            $_.PathName.IndexOf($program, [StringComparison]::OrdinalIgnoreCase) -ge 0
        })
    Set-Content -LiteralPath $List -Value ($running | ForEach-Object { $_.Name }) -Encoding UTF8
    foreach ($service in $running) { Stop-Service -Name $service.Name -Force }
}
elseif (Test-Path -LiteralPath $List) {
    Get-Content -LiteralPath $List | Where-Object { $_ } | ForEach-Object { Start-Service -Name $_ }
}
